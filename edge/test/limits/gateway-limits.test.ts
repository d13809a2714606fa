import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayLimits, type QuotaStorage } from '../../src/limits/gateway-limits.ts';
import { readLimits } from '../../src/limits/limits.ts';
import { EdgeMetrics } from '../../src/metrics/edge-metrics.ts';

class MemoryStorage implements QuotaStorage {
  readonly map = new Map<string, unknown>();
  writes = 0;
  async get<T>(key: string) {
    return this.map.get(key) as T | undefined;
  }
  async put<T>(entries: Record<string, T>) {
    this.writes++;
    for (const [k, v] of Object.entries(entries)) this.map.set(k, structuredClone(v));
  }
  async list<T>(o: { prefix: string; startAfter?: string; limit: number }) {
    const keys = [...this.map.keys()].filter((k) => k.startsWith(o.prefix) && (o.startAfter === undefined || k > o.startAfter)).sort().slice(0, o.limit);
    return new Map(keys.map((k) => [k, this.map.get(k) as T]));
  }
  async delete(keys: string[]) {
    let n = 0;
    for (const k of keys) if (this.map.delete(k)) n++;
    return n;
  }
}

describe('GatewayLimits', () => {
  const limits = readLimits({ LIMIT_CONVERSATION_CREATE: '2/1h', LIMIT_SEND_DEVICE: '2/10s' }, (m) => new Error(m));

  it('an hourly quota survives the gateway losing its memory (hibernation, eviction); a refusal writes nothing', async () => {
    const storage = new MemoryStorage();
    const spend = [{ limit: 'conversation_create' as const, key: 'ann', cost: 1 }];
    const first = new GatewayLimits(limits, storage, new EdgeMetrics());
    assert.deepEqual(await first.spend(spend), { ok: true });
    assert.deepEqual(await first.spend(spend), { ok: true });
    assert.equal(storage.writes, 2);
    const again = new GatewayLimits(limits, storage, new EdgeMetrics());
    const r = await again.spend(spend);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.limit === 'conversation_create' && r.retryAfterMs > 1_700_000 && r.retryAfterMs <= 1_800_000, JSON.stringify(r));
    assert.equal(storage.writes, 2, 'the refusal wrote nothing');
  });

  it('frame limits are memory only, and their refusals are counted by limit', () => {
    const storage = new MemoryStorage();
    const counts = new EdgeMetrics();
    const l = new GatewayLimits(limits, storage, counts);
    const spend = [{ limit: 'send_device' as const, key: 'ann\nphone', cost: 1 }];
    assert.equal(l.check(spend, 0), null);
    assert.equal(l.check(spend, 0), null);
    const refused = l.check(spend, 0);
    assert.equal(refused?.code, 'rate_limited');
    assert.equal(refused?.retryAfterMs, 5000);
    assert.equal(storage.writes, 0);
    assert.deepEqual(counts.snapshot().c.find((s) => s.n === 'switchboard_edge_rate_limited_total'), { n: 'switchboard_edge_rate_limited_total', k: 'send_device', v: 1 });
  });

  it('a sweep deletes stored buckets that have refilled, and keeps the others', async () => {
    const storage = new MemoryStorage();
    const l = new GatewayLimits(limits, storage, new EdgeMetrics());
    await l.spend([{ limit: 'conversation_create', key: 'old', cost: 1 }]);
    storage.map.set('limit:conversation_create:old', { tokens: 1, at: Date.now() - 3_600_000 });
    await l.spend([{ limit: 'conversation_create', key: 'recent', cost: 1 }]);
    assert.equal(await l.sweep(), 1);
    assert.deepEqual([...storage.map.keys()], ['limit:conversation_create:recent']);
  });
});
