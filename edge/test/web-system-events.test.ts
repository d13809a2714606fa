import assert from 'node:assert/strict';
import { it } from 'node:test';
import { sysText } from '../web/src/system-events.ts';

it('system events read as lines of text, from the viewer’s side', () => {
  assert.equal(sysText({ op: 'add', by: 'alice', users: ['bob', 'me'], role: 'member' }, 'me'), 'alice added bob, you');
  assert.equal(sysText({ op: 'remove', by: 'me', users: ['me'] }, 'me'), 'You left');
  assert.equal(sysText({ op: 'remove', by: 'alice', users: ['bob'] }, 'me'), 'alice removed bob');
  assert.equal(sysText({ op: 'role', by: 'alice', users: ['bob'], role: 'admin' }, 'me'), 'alice made bob admin');
  assert.equal(sysText({ op: 'link', by: 'bob', users: ['bob'], device: 'tablet' }, 'me'), 'bob linked a new device (tablet): security keys changed');
  assert.equal(sysText({ op: 'revoke', by: 'me', users: ['me'], device: 'old-phone' }, 'me'), 'You removed a device (old-phone): security keys changed');
});
