/**
 * `npm run bench:regions` (`-- --real` on `npm run stack:up -- --regions 2`): send → receive
 * latency between users near different regions, beside the same paths within one region, in the
 * same run (scripts/lib/regions.ts: regions `eu` and `us`, one edge, gateways `weur` near eu and
 * `enam` near us).
 *
 * Paths, each its own conversation, all sending at once at BENCH_RATE messages/s for
 * BENCH_SECONDS after a 2 s warm-up:
 * - live, same region (baseline): a direct conversation homed in us, us → us;
 * - live, across: a direct conversation homed in eu, eu → us (the ConversationDO pushes to the
 *   recipient's gateway; no region on the way);
 * - fan-out, same region (baseline): a 3-member group homed in us, us → us, delivered by us's
 *   fan-out (LIVE_PUSH_MAX_MEMBERS=2 keeps groups off the live path);
 * - fan-out, across: the same group, us → a member near eu.
 *
 * Everything here is loopback. On a real network a path that crosses regions adds one
 * inter-region hop; the output states that modeled addition separately (BENCH_WAN_ONE_WAY_MS,
 * default 75: half the ~150 ms inter-continental RTT of ../shared/design/operations.md).
 * BENCH_EDGE_STATE=disk (default) or tmpfs: where workerd keeps Durable Object state. Writes
 * .bench/regions.json (BENCH_OUT). Ctrl-C stops everything.
 */
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
import { ROOT } from '../lib/processes.ts';
import { PLACEMENT_OF, startRegions, type RegionEngines, type RegionName, type Regions } from '../lib/regions.ts';
import { edgeState, edgeStateDir } from './edge-state.ts';
import { dist, type Dist } from './load.ts';

const env = (k: string, d: string) => process.env[k]?.trim() || d;
const CFG = {
  rate: Number(env('BENCH_RATE', '20')),
  seconds: Number(env('BENCH_SECONDS', '20')),
  wanOneWayMs: Number(env('BENCH_WAN_ONE_WAY_MS', '75')),
  out: path.resolve(ROOT, env('BENCH_OUT', '.bench/regions.json')),
  real: process.argv.includes('--real'),
};
for (const [k, v] of Object.entries({ BENCH_RATE: CFG.rate, BENCH_SECONDS: CFG.seconds, BENCH_WAN_ONE_WAY_MS: CFG.wanOneWayMs })) {
  if (!Number.isFinite(v) || v <= 0) {
    console.error(`${k}: expected a positive number, got ${v}`);
    process.exit(2);
  }
}
const progress = (msg: string, fields: Record<string, unknown> = {}) => process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), svc: 'bench:regions', msg, ...fields }) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Both regions' engines from the running stack (`stack:up -- --regions 2`). */
async function stackEngines(): Promise<Record<RegionName, RegionEngines>> {
  const { connectionInfo, stackStatus } = await import('../stack/index.ts');
  const status = await stackStatus();
  const info = connectionInfo() as ReturnType<typeof connectionInfo> & { region2?: Parameters<typeof of>[0] };
  if (!status.ok || !info.region2) throw new Error('--real needs both regions of engines: npm run stack:up -- --regions 2');
  function of(i: { cassandra: { contactPoints: string[]; localDataCenter: string }; kafka: { brokers: string[] }; redis: { url: string } }): RegionEngines {
    return { contactPoints: i.cassandra.contactPoints.join(','), localDc: i.cassandra.localDataCenter, kafka: i.kafka.brokers.join(','), redis: i.redis.url };
  }
  return { eu: of(info), us: of(info.region2) };
}

/** A device: its socket, acking every push, and the time each body arrived. */
async function device(sys: Regions, user: string, near: RegionName, onMsg: (body: string, at: number) => void): Promise<WebSocket> {
  const res = await fetch(`${sys.edgeUrl}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user, device: 'd1' }) });
  const { token } = (await res.json()) as { token: string };
  const ws = new WebSocket(`${sys.edgeUrl.replace(/^http/, 'ws')}/v1/connect?${new URLSearchParams({ token, placement: PLACEMENT_OF[near] })}`);
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as { t: string; conv?: string; seq?: number; body?: string };
      if (f.t === 'hello') resolve();
      if (f.t === 'msg' && f.body) {
        onMsg(f.body, performance.now());
        ws.send(JSON.stringify({ t: 'ack', conv: f.conv, seq: f.seq }));
      }
    });
  });
  return ws;
}

async function create(sys: Regions, owner: string, near: RegionName, members: string[], extra: Record<string, unknown>): Promise<string> {
  const { token } = (await (await fetch(`${sys.edgeUrl}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user: owner, device: 'setup' }) })).json()) as { token: string };
  const res = await fetch(`${sys.edgeUrl}/v1/conversations?placement=${PLACEMENT_OF[near]}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ members, ...extra }) });
  if (!res.ok) throw new Error(`create: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

interface PathSpec {
  name: string;
  kind: 'live' | 'fanout';
  across: boolean;
}

async function main(): Promise<void> {
  const state = edgeState('disk');
  const edgeDir = edgeStateDir(state);
  const real = CFG.real ? await stackEngines() : null;
  progress('starting two regions and the edge', { engines: real ? 'real' : 'embedded', edgeState: state });
  const sys = await startRegions(real, { edgeDir });
  const stop = async () => {
    await sys.stop().catch(() => {});
    fs.rmSync(edgeDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  process.once('SIGTERM', () => void stop().then(() => process.exit(143)));
  try {
    const arrived = new Map<string, Map<string, number>>();
    const note = (who: string) => (body: string, at: number) => {
      let m = arrived.get(who);
      if (!m) arrived.set(who, (m = new Map()));
      m.set(body, at);
    };
    const liveSame = await create(sys, 'hal', 'us', ['ivy'], { direct: true });
    const liveAcross = await create(sys, 'fay', 'eu', ['gus'], { direct: true });
    const group = await create(sys, 'kim', 'us', ['fay', 'hal'], { title: 'bench' });
    const sockets = [
      await device(sys, 'hal', 'us', note('hal')),
      await device(sys, 'ivy', 'us', note('ivy')),
      await device(sys, 'fay', 'eu', note('fay')),
      await device(sys, 'gus', 'us', note('gus')),
      await device(sys, 'kim', 'us', note('kim')),
    ];
    const [hal, , fay, , kim] = sockets;
    const paths: { spec: PathSpec; from: WebSocket; conv: string; tag: string; to: string }[] = [
      { spec: { name: 'live, same region (us → us, homed us)', kind: 'live', across: false }, from: hal!, conv: liveSame, tag: 'ls', to: 'ivy' },
      { spec: { name: 'live, across (eu → us, homed eu)', kind: 'live', across: true }, from: fay!, conv: liveAcross, tag: 'la', to: 'gus' },
      { spec: { name: 'fan-out, same region (us → us, homed us)', kind: 'fanout', across: false }, from: kim!, conv: group, tag: 'g', to: 'hal' },
      { spec: { name: 'fan-out, across (us → eu, homed us)', kind: 'fanout', across: true }, from: kim!, conv: group, tag: 'g', to: 'fay' },
    ];
    const sentAt = new Map<string, number>();
    const senders = [...new Map(paths.map((p) => [p.tag, p])).values()];
    const total = Math.round((CFG.seconds + 2) * CFG.rate);
    const warm = Math.round(2 * CFG.rate);
    progress('sending', { perPathPerSecond: CFG.rate, seconds: CFG.seconds, warmupMessages: warm });
    const t0 = performance.now();
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / CFG.rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      for (const p of senders) {
        const body = `${p.tag} ${i}`;
        sentAt.set(body, performance.now());
        p.from.send(JSON.stringify({ t: 'send', conv: p.conv, cmid: `${p.tag}-${i}`, body }));
      }
      if (i > 0 && i % Math.round(5 * CFG.rate) === 0) progress('sent', { messages: i, of: total });
    }
    await sleep(3000);
    const result: Record<string, { kind: string; across: boolean; latency: Dist | null; lost: number; ratioP50?: number; ratioP99?: number; modeledP50Ms?: number; modeledP99Ms?: number }> = {};
    for (const p of paths) {
      const got = arrived.get(p.to) ?? new Map<string, number>();
      const ms: number[] = [];
      let lost = 0;
      for (let i = warm; i < total; i++) {
        const body = `${p.tag} ${i}`;
        const at = got.get(body);
        if (at === undefined) lost++;
        else ms.push(at - sentAt.get(body)!);
      }
      result[p.spec.name] = { kind: p.spec.kind, across: p.spec.across, latency: dist(ms), lost };
    }
    for (const p of paths.filter((x) => x.spec.across)) {
      const base = paths.find((x) => x.spec.kind === p.spec.kind && !x.spec.across)!;
      const [a, b] = [result[p.spec.name]!, result[base.spec.name]!.latency];
      if (a.latency && b) {
        a.ratioP50 = Math.round((a.latency.p50Ms / b.p50Ms) * 100) / 100;
        a.ratioP99 = Math.round((a.latency.p99Ms / b.p99Ms) * 100) / 100;
        a.modeledP50Ms = Math.round(a.latency.p50Ms + CFG.wanOneWayMs);
        a.modeledP99Ms = Math.round(a.latency.p99Ms + CFG.wanOneWayMs);
      }
    }
    const out = {
      at: new Date().toISOString(),
      engines: real ? 'real' : 'embedded',
      edgeState: state,
      ratePerPath: CFG.rate,
      seconds: CFG.seconds,
      wanModel: { oneWayMs: CFG.wanOneWayMs, note: 'loopback figures are measured; a path across regions adds one inter-region hop on a real network, modeled as this one-way time (modeledP50Ms / modeledP99Ms), not measured' },
      paths: result,
    };
    console.log('\npath                                          n     p50 ms   p99 ms   max ms  lost  ×p50  ×p99  +WAN p99');
    for (const [name, r] of Object.entries(result)) {
      const l = r.latency;
      console.log(`${name.padEnd(44)} ${String(l?.n ?? 0).padStart(5)} ${String(l?.p50Ms ?? '-').padStart(8)} ${String(l?.p99Ms ?? '-').padStart(8)} ${String(l?.maxMs ?? '-').padStart(8)} ${String(r.lost).padStart(5)} ${String(r.ratioP50 ?? '').padStart(5)} ${String(r.ratioP99 ?? '').padStart(5)} ${String(r.modeledP99Ms ?? '').padStart(9)}`);
    }
    console.log(`\n(×: ratio to the same kind of path within one region, this run; +WAN: p99 plus a modeled ${CFG.wanOneWayMs} ms inter-region hop; edge state on ${state})`);
    fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
    fs.writeFileSync(CFG.out, JSON.stringify(out, null, 2) + '\n');
    progress('wrote', { file: path.relative(ROOT, CFG.out) });
    for (const s of sockets) s.close();
  } finally {
    await stop();
  }
}

main().catch((err) => {
  progress('failed', { err: err instanceof Error ? err.message : String(err) });
  process.exit(1);
});
