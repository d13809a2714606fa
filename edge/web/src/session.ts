/**
 * Who this tab is signed in as. Per tab (sessionStorage): two windows can be two users, and a
 * reload keeps the user, the device id and so the device's IndexedDB outbox and cursors.
 */
export interface Session {
  user: string;
  device: string;
}

const KEY = 'switchboard.session';

export function loadSession(): Session | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as Session | null;
    return s && typeof s.user === 'string' && typeof s.device === 'string' ? s : null;
  } catch {
    return null;
  }
}

/** A new session of `user`: a new device unless the sign-in named one (an identity provider's token). */
export function saveSession(user: string, device = `web-${randomId().slice(0, 12)}`): Session {
  const s: Session = { user, device };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/**
 * Holds this tab's device for as long as the page lives (a Web Lock): a duplicated tab copies
 * sessionStorage, and two pages driving one device would share its outbox and its MLS state
 * (encrypting twice from one state reuses a key). When another page holds it (waiting a moment,
 * as a reload's previous page lets go), this tab becomes a new device of the same user.
 */
export async function holdDevice(s: Session): Promise<Session> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  if (!locks) return s;
  const tryHold = (name: string) =>
    new Promise<boolean>((resolve, reject) => {
      locks
        .request(name, { ifAvailable: true }, (lock) => {
          resolve(lock !== null);
          return lock ? new Promise<void>(() => {}) : undefined;
        })
        .catch(reject);
    });
  for (let i = 0; i < 20; i++) {
    if (await tryHold(`switchboard-device:${s.user}:${s.device}`)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  return holdDevice(saveSession(s.user));
}

export function clearSession(): void {
  sessionStorage.removeItem(KEY);
}

/** Read marks per conversation, kept per user in this browser until the server keeps them. */
export function loadReadMarks(user: string): Record<string, number> {
  try {
    const v = JSON.parse(localStorage.getItem(`switchboard.read.${user}`) ?? '{}') as unknown;
    return v && typeof v === 'object' ? (v as Record<string, number>) : {};
  } catch {
    return {};
  }
}

export function saveReadMarks(user: string, marks: Record<string, number>): void {
  try {
    localStorage.setItem(`switchboard.read.${user}`, JSON.stringify(marks));
  } catch {
    // Storage full or denied: unread counts then start over at the next load.
  }
}

/** A UUID, also where crypto.randomUUID is missing (pages not served from a secure origin). */
export function randomId(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
