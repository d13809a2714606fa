import type { SysEvent } from '@switchboard/protocol';

/** A conversation's system event as a line of text, from `me`'s point of view. */
export function sysText(sys: SysEvent, me: string): string {
  const who = (u: string) => (u === me ? 'you' : u);
  const Who = (u: string) => (u === me ? 'You' : u);
  const users = sys.users.map(who).join(', ');
  switch (sys.op) {
    case 'add':
      return `${Who(sys.by)} added ${users}${sys.role === 'admin' ? ' as admin' : ''}`;
    case 'remove':
      return sys.users.length === 1 && sys.users[0] === sys.by ? `${Who(sys.by)} left` : `${Who(sys.by)} removed ${users}`;
    case 'role':
      return `${Who(sys.by)} made ${users} ${sys.role ?? 'member'}`;
    case 'link':
      return `${Who(sys.users[0]!)} linked a new device (${sys.device ?? 'unnamed'}): security keys changed`;
    case 'revoke':
      return `${Who(sys.users[0]!)} removed a device (${sys.device ?? 'unnamed'}): security keys changed`;
  }
}
