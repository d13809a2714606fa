import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PRESENCE } from '@switchboard/protocol';
import { TypingLimiter } from '../../src/gateway/typing-limiter.ts';

describe('TypingLimiter', () => {
  it('relays one typing per device and conversation per interval; the rest are dropped', () => {
    const l = new TypingLimiter();
    const t = 1_000_000;
    assert.equal(l.allow('d1', 'c1', t), true);
    assert.equal(l.allow('d1', 'c1', t + 1), false);
    assert.equal(l.allow('d1', 'c1', t + PRESENCE.typingMinIntervalMs - 1), false);
    assert.equal(l.allow('d1', 'c2', t + 1), true, 'another conversation has its own allowance');
    assert.equal(l.allow('d2', 'c1', t + 1), true, 'another device has its own allowance');
    assert.equal(l.allow('d1', 'c1', t + PRESENCE.typingMinIntervalMs), true);
  });

  it('stays bounded with many conversations', () => {
    const l = new TypingLimiter();
    for (let i = 0; i < 5000; i++) l.allow('d', `c${i}`, i * PRESENCE.typingMinIntervalMs);
    assert.ok((l as unknown as { last: Map<string, number> }).last.size <= 1001);
  });
});
