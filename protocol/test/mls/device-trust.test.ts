import assert from 'node:assert/strict';
import { it } from 'node:test';
import { E2eDevice, MemoryMlsStore, newIdentityKey, type E2eHttp } from '../../src/client/mls/index.ts';

/** A device's trusted identity keys survive a restart, so a changed key is noticed, not trusted anew. */
it('keeps trusted identity keys across a restart and reports a changed one', async () => {
  const store = new MemoryMlsStore();
  const http: E2eHttp = { call: () => Promise.reject(new Error('no network in this test')) };
  const changed: string[] = [];
  const first = await E2eDevice.open({ user: 'ann', device: 'd1', store, http });
  const bobKey = (await newIdentityKey()).publicKey;
  assert.equal(first.trust.check('bob', bobKey), true, 'first use');
  first.close();
  await new Promise((r) => setTimeout(r, 20));

  const again = await E2eDevice.open({ user: 'ann', device: 'd1', store, http, onKeyChange: (u) => void changed.push(u) });
  assert.deepEqual(again.identityKey, first.identityKey, 'the same identity key from the store');
  assert.deepEqual(again.trust.known('bob'), bobKey, 'bob’s key remembered');
  assert.equal(again.trust.check('bob', bobKey), true);
  const other = (await newIdentityKey()).publicKey;
  assert.equal(again.trust.check('bob', other), false, 'a different key for bob is not trusted');
  assert.deepEqual(changed, ['bob'], 'and reported');
  again.trust.accept('bob', other);
  assert.equal(again.trust.check('bob', other), true, 'until the user accepts it');
});
