import { PRESENCE } from '@switchboard/protocol';

/**
 * Who is typing where. The SDK reports a start at the first `typing` event and an end when
 * PRESENCE.typingShowMs passes without renewal or when that user's message arrives.
 */
export class TypingBook {
  private readonly byConv = new Map<string, Set<string>>();

  constructor(private readonly me: string) {}

  /** true when that changed anything. */
  set(conv: string, user: string, on: boolean): boolean {
    if (user === this.me) return false;
    const users = this.byConv.get(conv) ?? new Set<string>();
    if (users.has(user) === on) return false;
    if (on) users.add(user);
    else users.delete(user);
    if (users.size) this.byConv.set(conv, users);
    else this.byConv.delete(conv);
    return true;
  }

  /** Who is typing in `conv`, in the order they started. */
  users(conv: string): string[] {
    return [...(this.byConv.get(conv) ?? [])];
  }
}

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…", or "". */
export function typingText(users: string[]): string {
  const [a, b] = users;
  if (users.length === 0) return '';
  if (users.length === 1) return `${a} is typing…`;
  if (users.length === 2) return `${a} and ${b} are typing…`;
  const rest = users.length - 2;
  return `${a}, ${b} and ${rest} other${rest === 1 ? '' : 's'} are typing…`;
}

/**
 * When to send `typing` while the user types: at the first keystroke, then at most every
 * PRESENCE.typingRenewMs (receivers show it for PRESENCE.typingShowMs, so it stays lit while the
 * user keeps typing). A sent message ends the indicator for the others, so the next keystroke
 * must not wait out the renewal: it goes as soon as the edge relays one again
 * (PRESENCE.typingMinIntervalMs after the last, plus a margin), later rather than never.
 */
export class TypingThrottle {
  private readonly last = new Map<string, { at: number; gapMs: number; ended: boolean }>();

  constructor(
    private readonly renewMs: number = PRESENCE.typingRenewMs,
    private readonly minMs: number = PRESENCE.typingMinIntervalMs + 250,
  ) {}

  /**
   * A keystroke in `conv`'s composer: 0 to send `typing` now, a number of ms to send it after
   * (call again then), or null when the indicator the others see already covers it.
   */
  keystroke(conv: string, now = Date.now()): number | null {
    const prev = this.last.get(conv);
    const wait = prev ? prev.at + prev.gapMs - now : 0;
    if (wait <= 0) {
      this.last.set(conv, { at: now, gapMs: this.renewMs, ended: false });
      return 0;
    }
    return prev?.ended ? wait : null;
  }

  /** The user sent a message in `conv` (which ends the indicator the others see). */
  sent(conv: string): void {
    const prev = this.last.get(conv);
    if (prev) Object.assign(prev, { gapMs: this.minMs, ended: true });
  }
}
