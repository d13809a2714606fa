import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LIMIT_TABLE, parseRate, readLimits } from '../../src/limits/limits.ts';
import { TokenBuckets } from '../../src/limits/token-buckets.ts';

describe('TokenBuckets', () => {
  const rate = { burst: 5, periodMs: 1000 };
  const spend = (key = 'd1', cost = 1) => [{ limit: 'send_device' as const, key, rate, cost }];

  it('lets a burst through, refuses the flood past it with how long to wait, and refills', () => {
    const b = new TokenBuckets();
    const t = 1_000_000;
    for (let i = 0; i < 5; i++) assert.equal(b.take(spend(), t), null, `burst ${i}`);
    const refused = b.take(spend(), t);
    assert.deepEqual(refused, { limit: 'send_device', retryAfterMs: 200 });
    assert.notEqual(b.take(spend(), t + 199), null, 'not before the retry-after');
    assert.equal(b.take(spend(), t + 200), null, 'one token back after 1/5 of the period');
    assert.equal(b.take(spend('d2'), t), null, 'another key has its own bucket');
    for (let i = 0; i < 5; i++) assert.equal(b.take(spend(), t + 2000 + i), null, 'full again after a quiet period');
  });

  it('takes all spends or none', () => {
    const b = new TokenBuckets();
    const small = { burst: 1, periodMs: 1000 };
    const both = [
      { limit: 'send_device' as const, key: 'd', rate, cost: 1 },
      { limit: 'send_user' as const, key: 'u', rate: small, cost: 1 },
    ];
    assert.equal(b.take(both, 0), null);
    assert.equal(b.take(both, 0)?.limit, 'send_user');
    // The device bucket was not charged by the refused spend: 4 more of its 5 remain.
    for (let i = 0; i < 4; i++) assert.equal(b.take([both[0]!], 0), null);
    assert.notEqual(b.take([both[0]!], 0), null);
  });

  it('a cost above the burst waits a whole period (it can never pass at once)', () => {
    assert.deepEqual(new TokenBuckets().take(spend('d', 6), 0), { limit: 'send_device', retryAfterMs: 1000 });
  });

  it('stays bounded with many keys', () => {
    const b = new TokenBuckets(1000);
    for (let i = 0; i < 5000; i++) b.take(spend(`k${i}`), i);
    assert.ok(b.size <= 1001, `size ${b.size}`);
  });
});

describe('limits configuration', () => {
  it('parses <burst>/<period>', () => {
    assert.deepEqual(parseRate('30/10s'), { burst: 30, periodMs: 10_000 });
    assert.deepEqual(parseRate('60/1h'), { burst: 60, periodMs: 3_600_000 });
    assert.deepEqual(parseRate('5/250ms'), { burst: 5, periodMs: 250 });
    for (const bad of ['', '30', '0/1s', '30/0s', '30/25h', '-1/1s', '1.5/1s', '30/10x']) assert.equal(parseRate(bad), null, bad);
  });

  it('every default is valid, and a bad value names its variable', () => {
    const limits = readLimits({}, (m) => new Error(m));
    for (const name of Object.keys(LIMIT_TABLE) as (keyof typeof LIMIT_TABLE)[]) assert.deepEqual(limits[name], parseRate(LIMIT_TABLE[name].default));
    assert.deepEqual(readLimits({ LIMIT_SEND_DEVICE: '3/1s' }, (m) => new Error(m)).send_device, { burst: 3, periodMs: 1000 });
    assert.throws(() => readLimits({ LIMIT_WATCH: 'lots' }, (m) => new Error(m)), /LIMIT_WATCH: expected <burst>\/<period>/);
  });
});
