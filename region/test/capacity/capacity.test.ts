import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '../../../scripts/lib/processes.ts';
import { applyBenchFiles, BENCH_FILES } from '../../../scripts/capacity/bench.ts';
import { defaultInputs, InputError, parseNumber, setInput, type Inputs } from '../../../scripts/capacity/inputs.ts';
import { compute, type Result, type Tier } from '../../../scripts/capacity/model.ts';
import { renderMarkdown } from '../../../scripts/capacity/render.ts';

/** `npm run capacity` (scripts/capacity/): its figures follow from its inputs, and it runs with or without bench files. */

const run = (sets: Record<string, number> = {}): Result => {
  const inputs = defaultInputs();
  for (const [k, v] of Object.entries(sets)) setInput(inputs, k, v, 'override', 'test');
  return compute(inputs);
};
const tier = (r: Result, t: Tier['tier']) => r.tiers.find((x) => x.tier === t)!;
const boundUnits = (r: Result, t: Tier['tier'], by: RegExp) => tier(r, t).bounds.find((b) => by.test(b.by))!.units;
const boundExact = (r: Result, t: Tier['tier'], by: RegExp) => tier(r, t).bounds.find((b) => by.test(b.by))!.exact;
const note = (r: Result, t: Tier['tier'], name: RegExp) => tier(r, t).notes.find((n) => name.test(n.name))!.value;
/** b is twice a, give or take the rounding up of each. */
const doubled = (a: number, b: number, msg: string) => assert.ok(Math.abs(b - 2 * a) <= 2 && b > a, `${msg}: ${a} → ${b}, expected about ${2 * a}`);

describe('capacity model: figures follow from inputs', () => {
  const base = run();

  it('on defaults every tier has a fleet and the cost adds up', () => {
    for (const t of base.tiers) assert.ok(t.units > 0, `${t.tier} has units`);
    const sum = base.costs.reduce((a, c) => a + c.monthly, 0);
    assert.ok(Math.abs(sum - base.totalMonthly) < 1e-6);
    assert.ok(Math.abs(Object.values(base.costByTier).reduce((a, b) => a + b, 0) - base.totalMonthly) < 1e-6);
    // operations.md's back-of-envelope, reproduced from the same anchors when its shape is set:
    // sends only at 20:1 ≈ $22.5k, 5 ms active ≈ $24k, one call each way ≈ 2 × $450k.
    const line = (r: Result, re: RegExp) => r.costs.find((c) => re.test(c.item))!.monthly;
    const ops = run({ ackFramesPerDelivery: 0, gatewaysPerMessage: 1 });
    const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 0.05 * b, `${what}: ${a} vs ${b}`);
    near(line(ops, /inbound WebSocket/), 22_500, 'ws requests');
    near(line(ops, /DO duration: ConversationDOs/), 24_000, 'duration');
    near(line(ops, /stub calls/), 900_000, 'stub calls');
    // Acks and more gateways per message move exactly those lines.
    near(line(base, /inbound WebSocket/), 22_500 * (1 + 3), 'ws requests with an ack per delivery');
    near(line(base, /stub calls/), 450_000 * (1 + 3), 'stub calls with 3 gateways per message');
  });

  it('doubling peak messages/s doubles region cores for messages and fan-out, Kafka partitions, Cassandra write-bound nodes and edge delivery-bound gateways; storage and socket bounds stay', () => {
    const x2 = run({ peakMessagesPerSec: 10e6 });
    // Region cores: the message and fan-out rows double; presence follows sockets, not messages.
    doubled(boundUnits(base, 'region', /^messages/), boundUnits(x2, 'region', /^messages/), 'region cores by messages/s');
    doubled(boundUnits(base, 'region', /fan-out/), boundUnits(x2, 'region', /fan-out/), 'region cores by deliveries/s');
    assert.equal(boundUnits(x2, 'region', /presence/), boundUnits(base, 'region', /presence/));
    const presence = boundExact(base, 'region', /presence/);
    assert.ok(Math.abs(tier(x2, 'region').units - presence - 2 * (tier(base, 'region').units - presence)) <= 2, 'region total = 2 × message-driven + presence');
    doubled(note(base, 'kafka', /^partitions/), note(x2, 'kafka', /^partitions/), 'kafka partitions');
    doubled(boundUnits(base, 'kafka', /bytes in/), boundUnits(x2, 'kafka', /bytes in/), 'kafka brokers by bytes');
    doubled(boundUnits(base, 'cassandra', /^replica writes/), boundUnits(x2, 'cassandra', /^replica writes/), 'cassandra nodes by writes');
    doubled(boundUnits(base, 'cassandra', /CPU/), boundUnits(x2, 'cassandra', /CPU/), 'cassandra nodes by CPU');
    doubled(boundUnits(base, 'kafka', /CPU/), boundUnits(x2, 'kafka', /CPU/), 'kafka brokers by CPU');
    doubled(boundUnits(base, 'edge', /deliveries/), boundUnits(x2, 'edge', /deliveries/), 'gateways by deliveries');
    doubled(tier(base, 'push').units, tier(x2, 'push').units, 'push processes');
    assert.equal(boundUnits(x2, 'cassandra', /storage/), boundUnits(base, 'cassandra', /storage/));
    assert.equal(boundUnits(x2, 'edge', /hibernation/), boundUnits(base, 'edge', /hibernation/));
    assert.equal(boundUnits(x2, 'edge', /memory/), boundUnits(base, 'edge', /memory/));
  });

  it('doubling bytes per socket doubles the memory-bound gateway count, and only that bound', () => {
    const x2 = run({ edgeKbPerSocket: defaultInputs().edgeKbPerSocket!.value * 2 });
    doubled(boundUnits(base, 'edge', /memory/), boundUnits(x2, 'edge', /memory/), 'gateways by memory');
    for (const by of [/hibernation/, /deliveries/, /requests/, /connects/]) assert.equal(boundUnits(x2, 'edge', by), boundUnits(base, 'edge', by), String(by));
    // More gateways are more awake gateways to pay for: the edge's bill moves, no other tier's.
    for (const t of Object.keys(base.costByTier) as Tier['tier'][]) {
      if (t === 'edge') assert.ok(x2.costByTier.edge > base.costByTier.edge);
      else assert.equal(x2.costByTier[t], base.costByTier[t], t);
    }
    const awake = (r: Result) => r.costs.find((c) => /gateways awake/.test(c.item))!.quantity;
    assert.equal(awake(x2) / awake(base), tier(x2, 'edge').units / tier(base, 'edge').units);
  });

  it('retention, replication and node size move the storage-bound Cassandra count', () => {
    doubled(boundUnits(base, 'cassandra', /storage/), boundUnits(run({ retentionDays: 60 }), 'cassandra', /storage/), 'retention ×2');
    assert.ok(Math.abs(boundExact(run({ cassandraRf: 1 }), 'cassandra', /storage/) * 3 - boundExact(base, 'cassandra', /storage/)) < 1e-6);
    assert.ok(boundUnits(run({ cassandraTbPerNode: 4 }), 'cassandra', /storage/) < boundUnits(base, 'cassandra', /storage/));
    // Netflix 2011's per-node rate (operations.md) makes writes bind instead.
    const netflix = run({ cassandraWritesPerNodePerSec: 3800 });
    assert.match(tier(netflix, 'cassandra').binding, /^replica writes/);
    assert.ok(tier(netflix, 'cassandra').units > tier(base, 'cassandra').units);
  });

  it('changing a price changes only its own tier\'s cost, in proportion', () => {
    const cases: [string, Tier['tier'][]][] = [
      ['priceCassandraNodeMonth', ['cassandra']],
      ['priceKafkaBrokerMonth', ['kafka']],
      ['priceRedisShardMonth', ['redis']],
      ['priceDoRowWritesPerM', ['edge']],
      ['priceDoRequestsPerM', ['edge']],
      ['priceDoGbSecondsPerM', ['edge']],
      ['priceWorkerRequestsPerM', ['edge']],
      ['priceCoreMonth', ['region', 'push']],
    ];
    for (const [price, moves] of cases) {
      const r = run({ [price]: defaultInputs()[price]!.value * 3 });
      for (const t of Object.keys(base.costByTier) as Tier['tier'][]) {
        if (moves.includes(t)) assert.ok(r.costByTier[t] > base.costByTier[t], `${price} moves ${t}`);
        else assert.equal(r.costByTier[t], base.costByTier[t], `${price} leaves ${t} alone`);
      }
      const lines = (x: Result) => x.costs.filter((c) => c.priceInput === price).reduce((a, c) => a + c.monthly, 0);
      assert.ok(Math.abs(lines(r) - 3 * lines(base)) < 1e-6 * lines(r), `${price}: its lines ×3`);
      // The fleet does not depend on prices.
      assert.deepEqual(r.tiers.map((t) => t.units), base.tiers.map((t) => t.units));
    }
  });

  it('names the tier that costs most and why: on defaults the ConversationDO storage rows per message', () => {
    assert.equal(base.mostExpensive.tier, 'edge');
    assert.match(base.mostExpensive.item, /SQLite rows/);
    assert.match(base.mostExpensive.why, /rows per message/);
    const rows = base.costs.find((c) => /SQLite rows/.test(c.item))!;
    assert.equal(rows.quantity, 100e9 * 30 * defaultInputs().doRowWritesPerMessage!.value);
    // Without DO rows (a memory ring), the answer changes to what then binds.
    const ring = run({ doRowWritesPerMessage: 0 });
    assert.ok(ring.totalMonthly < base.totalMonthly);
    assert.doesNotMatch(ring.mostExpensive.item, /SQLite rows/);
  });

  it('push: peak FCM sends against the published quota', () => {
    const fcm = note(base, 'push', /FCM peak ÷ quota/);
    assert.ok(Math.abs(fcm - (5e6 * 0.2 * 0.7) / (600_000 / 60)) < 1e-9);
    assert.ok(Math.abs(note(run({ fcmQuotaPerMinute: 1_200_000 }), 'push', /FCM peak ÷ quota/) - fcm / 2) < 1e-9);
  });

  it('every input has a unit and a source; anchors cite ../shared/design', () => {
    for (const i of Object.values(defaultInputs())) {
      assert.ok(i.unit && i.source, i.name);
      if (i.origin === 'anchor') assert.match(i.source, /\.\.\/shared\/design\/\w+\.md/, i.name);
      if (i.origin === 'default') assert.ok(i.bench?.command.startsWith('npm run bench:'), `${i.name} names the bench that measures it`);
    }
  });

  it('bad input values are refused with a clear message', () => {
    const inputs = defaultInputs();
    assert.throws(() => setInput(inputs, 'nope', '1', 'override', ''), (e: unknown) => e instanceof InputError && /unknown input "nope"/.test(e.message));
    assert.throws(() => setInput(inputs, 'headroom', 'lots', 'override', ''), (e: unknown) => e instanceof InputError && /not a number/.test(e.message));
    assert.throws(() => setInput(inputs, 'headroom', '0.5', 'override', ''), (e: unknown) => e instanceof InputError && /below its minimum/.test(e.message));
    assert.equal(parseNumber('5M'), 5e6);
    assert.equal(parseNumber('1_000'), 1000);
    assert.equal(parseNumber('2.5e3'), 2500);
  });
});

describe('capacity model: bench files', () => {
  const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'capacity-test-'));

  it('missing bench files fall back to defaults, labelled as such with the bench that measures them', () => {
    const dir = tmp();
    try {
      const inputs = defaultInputs();
      const reports = applyBenchFiles(inputs, dir);
      assert.deepEqual(reports.map((r) => r.status), BENCH_FILES.map(() => 'missing'));
      const md = renderMarkdown(compute(inputs), inputs, reports, 'now');
      assert.match(md, /\.bench\/fanout\.json: missing; defaults used \(run npm run bench:fanout\)/);
      assert.match(md, /\| edgeKbPerSocket \| 77 \| KB\/socket \| default \(npm run bench:connections measures it\) \|/);
      assert.doesNotMatch(md, /\| measured \|/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads measured figures from the files the benches write, labels them measured, and they move the fleet', () => {
    const dir = tmp();
    const w = (f: string, o: unknown) => fs.writeFileSync(path.join(dir, f), JSON.stringify(o));
    try {
      // Shapes as scripts/bench/*.ts and region/bench/engines-latency.ts write them (only the keys read).
      w('fanout.json', { switchboard: [
        { rate: 10, deliveriesPerSec: 10_000, cpuPercent: { 'edge workerd': 40, region: 30 } },
        { rate: 30, deliveriesPerSec: 30_000, cpuPercent: { 'edge workerd': 150, region: 60 } },
      ] });
      w('latency.json', { results: [{ rate: 100, cpuMsPerMessage: { region: 0.8, 'edge workerd': 0.4 } }, { rate: 500, cpuMsPerMessage: { region: 1.0, cassandra: 0.64, kafka: null } }] });
      w('connections.json', { results: [{ target: 'floor', perSocketKb: 70, connect: { perSec: 3000 } }, { target: 'edge', perSocketKb: 154, connect: { perSec: 2500 } }] });
      w('presence.json', { steadyState: [{ batch: 2, beatsPerSecond: 4000 }, { batch: 200, beatsPerSecond: 40_000 }] });
      w('push.json', { sections: { providers: { apns: [{ perSecond: 900 }, { perSecond: 3000 }], fcm: [{ perSecond: 500 }, { perSecond: 1500 }] } } });
      fs.writeFileSync(path.join(dir, 'engines.json'), '{ not json');
      const inputs = defaultInputs();
      const reports = applyBenchFiles(inputs, dir);
      const status = Object.fromEntries(reports.map((r) => [r.file, r.status]));
      assert.deepEqual(status, { 'fanout.json': 'read', 'latency.json': 'read', 'connections.json': 'read', 'presence.json': 'read', 'push.json': 'read', 'engines.json': 'unreadable' });
      const val = (n: string) => [inputs[n]!.value, inputs[n]!.origin];
      assert.deepEqual(val('edgeDeliveriesPerCore'), [20_000, 'measured']); // 30,000/s at 150 % of a core
      assert.deepEqual(val('regionCpuUsPerDelivery'), [20, 'measured']); // 0.6 core / 30,000/s
      assert.deepEqual(val('regionCpuMsPerMessage'), [1.0, 'measured']); // the highest rate
      assert.deepEqual(val('edgeKbPerSocket'), [154, 'measured']); // the edge, not the floor
      assert.deepEqual(val('edgeConnectsPerSecPerGateway'), [2500, 'measured']);
      assert.deepEqual(val('presenceBeatsPerSecPerProcess'), [40_000, 'measured']);
      assert.deepEqual(val('pushSendsPerSecPerProcess'), [1500, 'measured']); // the slower provider's best
      assert.deepEqual(val('cassandraCpuMsPerWrite'), [0.64, 'measured']);
      assert.deepEqual(val('kafkaCpuMsPerRecord'), [0.08, 'default']); // null in the record: the default stays
      assert.deepEqual(val('cassandraWriteMs'), [1, 'default']);
      assert.equal(inputs.edgeKbPerSocket!.defaultValue, 77);
      const r = compute(inputs);
      doubled(boundUnits(run(), 'edge', /memory/), boundUnits(r, 'edge', /memory/), 'measured 154 KB vs default 77 KB');
      doubled(boundUnits(run(), 'cassandra', /CPU/), boundUnits(r, 'cassandra', /CPU/), 'measured 0.64 ms vs default 0.32 ms per write');
      const md = renderMarkdown(r, inputs, reports, 'now');
      assert.match(md, /\| edgeKbPerSocket \| 154 \| KB\/socket \| measured \| \.bench\/connections\.json results\[target=edge\]\.perSocketKb \[default 77\] \|/);
      assert.match(md, /\.bench\/engines\.json: unreadable/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('npm run capacity (the CLI)', () => {
  const cli = (args: string[], dir: string) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts/capacity/cli.ts'), '--bench-dir', dir, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });

  it('runs with no bench files, prints the fleet and cost, and writes .bench/capacity.md and .json', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capacity-cli-'));
    try {
      const r = cli(['--set', 'retentionDays=90'], dir);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /fleet:/);
      assert.match(r.stdout, /monthly cost \(price table\):/);
      assert.match(r.stdout, /costs most: edge/);
      assert.match(r.stderr, /"msg":"bench figures not available: defaults used","file":".bench\/fanout.json"/);
      const md = fs.readFileSync(path.join(dir, 'capacity.md'), 'utf8');
      assert.match(md, /^# Capacity model/);
      assert.match(md, /## Fleet/);
      assert.match(md, /\| retentionDays \| 90 \| days \| --set \| --set retentionDays=90 \[default 30\] \|/);
      const json = JSON.parse(fs.readFileSync(path.join(dir, 'capacity.json'), 'utf8'));
      assert.equal(json.inputs.retentionDays.value, 90);
      assert.equal(json.result.tiers.length, 6);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a bad --set exits 2 with one clear line and no stack trace, and writes nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'capacity-cli-'));
    try {
      for (const [args, re] of [
        [['--set', 'peakMessagesPerSec=fast'], /capacity: input "peakMessagesPerSec": "fast" is not a number/],
        [['--set', 'noSuchInput=1'], /capacity: unknown input "noSuchInput"/],
        [['--set', 'headroom'], /capacity: --set expects name=value/],
        [['--frobnicate'], /capacity: unknown argument "--frobnicate"/],
      ] as [string[], RegExp][]) {
        const r = cli(args, dir);
        assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, re);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.doesNotMatch(r.stderr, /\n\s+at /);
      }
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
