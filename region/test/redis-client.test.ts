import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keySlot, seedNode } from '../src/redis-client.ts';

describe('redis client', () => {
  it("computes a key's Cluster slot as Redis does (CRC16 of the key or of its hash tag)", () => {
    // Values from CLUSTER KEYSLOT on Redis 7.0.
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('123456789'), 12739);
    assert.equal(keySlot('{user1000}.following'), 3443);
    assert.equal(keySlot('user1000'), 3443);
    assert.equal(keySlot('a{}b'), 13694, 'an empty tag hashes the whole key');
    assert.equal(keySlot('sb:route:{u1}'), keySlot('sb:presence:watching:{u1}:phone'));
  });

  it('takes seed nodes as host:port, an IPv6 host in brackets', () => {
    assert.deepEqual(seedNode('10.0.0.1:7000'), { host: '10.0.0.1', port: 7000 });
    assert.deepEqual(seedNode('[::1]:7002'), { host: '::1', port: 7002 });
  });
});
