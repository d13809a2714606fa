import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { FileMlsStore, FileStore } from '@switchboard/protocol/client/node';
import { E2eDevice, e2eHttp } from '@switchboard/protocol/mls';
import { startSystem, type System } from './system.ts';

/**
 * A randomized run of an encrypted group through the SDK (seeded: E2E_RANDOM_SEED repeats one):
 * sends from random members, several at once (so rotations race and one commit wins), removals
 * and additions through the API, and devices restarted from their files. At the end every device
 * has read, in plaintext and in order, exactly the messages sent while its user was a member
 * (from its latest join on), and nothing failed to decrypt.
 */
const SEED = Number(process.env.E2E_RANDOM_SEED ?? 20261205);
const STEPS = Number(process.env.E2E_RANDOM_STEPS ?? 60);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe(`the SDK, end-to-end encrypted: a randomized run (seed ${SEED}, ${STEPS} steps)`, { timeout: 600_000 }, () => {
  let sys: System;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-mls-random-'));
  const errors: string[] = [];
  const USERS = ['ralice', 'rbob', 'rcarol', 'rdave', 'rerin'];

  interface Device {
    user: string;
    e2e: E2eDevice;
    client: SwitchboardClient;
    /** Plaintexts read, by seq. */
    read: Map<number, string>;
  }
  const devices = new Map<string, Device>();

  const open = async (user: string): Promise<Device> => {
    const token = () => devToken(sys.edgeUrl, user, 'd1');
    const e2e = await E2eDevice.open({ user, device: 'd1', store: new FileMlsStore(path.join(dir, user, 'mls')), http: e2eHttp(sys.edgeUrl, token) });
    await e2e.publishKeyPackages();
    const read = devices.get(user)?.read ?? new Map<number, string>();
    const client = new SwitchboardClient({
      url: sys.edgeUrl,
      token,
      socket: (u) => new WebSocket(u) as unknown as SocketLike,
      store: new FileStore(path.join(dir, user, 'client')),
      transform: e2e.transform,
      onMessage: (m: Msg) => void (m.sys ? undefined : read.set(m.seq, m.body)),
      onTransformError: (m, err) => void errors.push(`${user}: seq ${m.seq}: ${err instanceof Error ? err.message : String(err)}`),
    });
    await client.connect();
    const d = { user, e2e, client, read };
    devices.set(user, d);
    return d;
  };
  before(async () => {
    sys = await startSystem('embedded');
  });
  after(async () => {
    for (const d of devices.values()) d.client.close();
    await sys?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ends with every member device having read exactly its messages, and 0 decryption failures', async () => {
    const rand = prng(SEED);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!;
    for (const u of USERS) await open(u);
    const alice = devices.get('ralice')!;
    const conv = await alice.e2e.createConversation(['rbob', 'rcarol', 'rdave'], 'random');
    for (const d of devices.values()) if (d.user !== 'rerin') d.client.follow(conv);
    const members = new Set(['ralice', 'rbob', 'rcarol', 'rdave']);
    /** Each user's latest join seq (0: founding) and, if removed, their removal seq. */
    const joinedAt = new Map([...members].map((u) => [u, 0]));
    const removedAt = new Map<string, number>();
    const sent = new Map<number, { from: string; text: string }>();
    const counts = { sends: 0, concurrent: 0, removes: 0, adds: 0, restarts: 0 };
    let n = 0;
    const log: string[] = [];

    const say = async (d: Device) => {
      const text = `m${++n} from ${d.user}`;
      const r = await d.e2e.send(conv, text, (c, body, cmid) => d.client.send(c, body, cmid)).catch((err: unknown) => {
        throw new Error(`${d.user} could not send ${text} (step ${log.length}): ${err instanceof Error ? err.message : String(err)}; errors: ${JSON.stringify(errors)}; log: ${log.slice(-12).join(' | ')}`);
      });
      sent.set(r.seq, { from: d.user, text });
      counts.sends++;
    };

    for (let step = 0; step < STEPS; step++) {
      const roll = rand();
      const current = [...members];
      log.push(`step ${step} roll ${roll.toFixed(2)} members ${current.join(',')}`);
      if (roll < 0.5) await say(devices.get(pick(current))!);
      else if (roll < 0.65) {
        // Several members at once: after a membership change their rotations race.
        const who = [...new Set([pick(current), pick(current), pick(current)])];
        await Promise.all(who.map((u) => say(devices.get(u)!)));
        counts.concurrent++;
      } else if (roll < 0.77 && current.length > 2) {
        const u = pick(current.filter((x) => x !== 'ralice'));
        const r = (await devices.get('ralice')!.e2e.removeMember(conv, u)) as { seq: number };
        members.delete(u);
        removedAt.set(u, r.seq);
        counts.removes++;
      } else if (roll < 0.89) {
        const outside = USERS.filter((u) => !members.has(u));
        if (outside.length === 0) continue;
        const u = pick(outside);
        const r = (await devices.get('ralice')!.e2e.addMembers(conv, [u])) as { seq: number };
        members.add(u);
        joinedAt.set(u, r.seq);
        removedAt.delete(u);
        // The device follows from its addition (what resume tells a device connecting later).
        devices.get(u)!.client.follow(conv, r.seq - 1);
        counts.adds++;
      } else {
        // A restart: the client and its E2eDevice again, from their files.
        const u = pick(current);
        const d = devices.get(u)!;
        d.client.close();
        d.e2e.close();
        await open(u);
        counts.restarts++;
      }
    }
    // Everyone still a member says one last thing (each rotation settled by then).
    for (const u of members) await say(devices.get(u)!);

    const expected = (u: string) =>
      [...sent.entries()]
        .filter(([seq]) => seq > (joinedAt.get(u) ?? Infinity) && (!removedAt.has(u) || seq < removedAt.get(u)!))
        .sort(([a], [b]) => a - b)
        .map(([seq, m]) => `${seq} ${m.from}: ${m.text}`);
    const got = (u: string) => [...devices.get(u)!.read.entries()].filter(([seq]) => seq > (joinedAt.get(u) ?? Infinity)).sort(([a], [b]) => a - b).map(([seq, body]) => `${seq} ${sent.get(seq)?.from}: ${body}`);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && [...members].some((u) => got(u).length < expected(u).length)) await new Promise((r) => setTimeout(r, 100));
    console.log(`# ${JSON.stringify(counts)}; ${sent.size} messages; final members ${[...members].join(', ')}`);
    assert.deepEqual(errors, [], 'no message failed to decrypt');
    for (const u of members) assert.deepEqual(got(u), expected(u), `${u} read exactly the messages of its membership`);
    const epochs = new Set(await Promise.all([...members].map(async (u) => String(await devices.get(u)!.e2e.epoch(conv)))));
    assert.equal(epochs.size, 1, `every member at one epoch (${[...epochs]})`);
  });
});
