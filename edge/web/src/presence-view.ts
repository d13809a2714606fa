import type { PresenceState } from '@switchboard/protocol';
import { presenceText } from './presence.ts';

/** What the view reads of the live state: presence of watched users, who is typing where, receipts. */
export interface LiveState {
  presence(user: string): PresenceState | undefined;
  typing(conv: string): string[];
  /** The state of my message at `seq` in `conv` (receipts.ts). */
  msgState(conv: string, seq: number): 'sent' | 'delivered' | 'read';
}

/** A presence dot labelled "online" / "last seen …"; null while the state is unknown. */
export function dot(st: PresenceState | undefined, now = Date.now()): HTMLSpanElement | null {
  if (!st) return null;
  const label = presenceText(st, now);
  const e = document.createElement('span');
  e.className = 'dot';
  e.dataset.presence = st.status;
  e.setAttribute('role', 'img');
  e.setAttribute('aria-label', label);
  e.title = label;
  return e;
}

/** The group's members (other than the user) with their dots, online first. */
export function peopleItems(users: string[], live: LiveState, now = Date.now()): HTMLLIElement[] {
  const online = (u: string) => (live.presence(u)?.status === 'online' ? 0 : 1);
  return [...users]
    .sort((a, b) => online(a) - online(b) || a.localeCompare(b))
    .map((u) => {
      const li = document.createElement('li');
      const d = dot(live.presence(u), now);
      if (d) li.append(d);
      li.append(u);
      li.dataset.user = u;
      return li;
    });
}
