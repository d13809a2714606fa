import { LIST_MEMBERS, unreadCount, type InboxEntry, type InboxRequest, type InboxResponse } from '@switchboard/protocol';
import type { Storage, UserConversation } from './storage/storage.ts';

/** Conversations read from the user's index per storage call. */
const INDEX_PAGE = 1000;
/**
 * The list sorts the user's whole conversation index by activity on every request, so it reads at
 * most this many conversations per user; beyond that the oldest-by-id are left out. (At that
 * scale the list wants a per-user table kept in activity order on each message.)
 */
export const INBOX_MAX_CONVERSATIONS = 10_000;
/** Page entries read from storage at once. */
const DETAIL_CONCURRENCY = 16;

type Activity = UserConversation & { activity: number };

/** `<activity>~<id>`: the last entry of a page; the next page starts after it. */
const inboxCursor = (e: { activity: number; conv: string }) => `${e.activity}~${e.conv}`;

/** `after` is '' or a valid InboxCursor (the request schema checked it). */
function parseCursor(after: string): { activity: number; conv: string } | null {
  if (after === '') return null;
  const cut = after.indexOf('~');
  return { activity: Number(after.slice(0, cut)), conv: after.slice(cut + 1) };
}

/** Newest activity first; the same activity by id. */
const newestFirst = (a: { activity: number; conv: string }, b: { activity: number; conv: string }) =>
  b.activity - a.activity || (a.conv < b.conv ? -1 : a.conv > b.conv ? 1 : 0);

/**
 * A page of the user's conversation list: newest activity first, each with title, members, last
 * seq and message, and the user's positions and unread count. The order moves as messages
 * arrive, so a client pages once and then follows the live stream (a conversation that moved
 * between two page reads may show on both or neither; the cursor never repeats a page).
 */
export async function inboxPage(storage: Storage, req: InboxRequest): Promise<InboxResponse> {
  const all: UserConversation[] = [];
  for (let after = ''; all.length < INBOX_MAX_CONVERSATIONS; ) {
    const page = await storage.userConversations(req.user, after, INDEX_PAGE);
    all.push(...page);
    if (page.length < INDEX_PAGE) break;
    after = page.at(-1)!.conv;
  }
  // Without a stored time (no message yet, or stored before times were kept) the creation time stands in.
  const withActivity: Activity[] = await mapLimited(all, DETAIL_CONCURRENCY, async (c) => {
    if (c.lastTs !== null) return { ...c, activity: c.lastTs };
    const conv = await storage.getConversation(c.conv);
    return { ...c, activity: conv?.createdAt ?? 0 };
  });
  withActivity.sort(newestFirst);
  const from = parseCursor(req.after);
  const rest = from ? withActivity.filter((e) => newestFirst(e, from) > 0) : withActivity;
  const page = rest.slice(0, req.limit);
  const [positions, requests] = await Promise.all([storage.positions(req.user, page.map((e) => e.conv)), storage.requestsOf(req.user)]);
  // Conversations the user has not accepted yet are marked as requests (consent).
  const requestBy = new Map(requests.map((r) => [r.conv, { by: r.by, at: r.at }]));
  const entries = await mapLimited(page, DETAIL_CONCURRENCY, async (e): Promise<InboxEntry | null> => {
    const [conv, newest] = await Promise.all([storage.getConversation(e.conv), e.lastSeq > 0 ? storage.readBefore(e.conv, e.lastSeq + 1, 1) : Promise.resolve([])]);
    const me = conv?.roster?.find((m) => m.user === req.user);
    if (!conv || !me) return null;
    const p = positions.get(e.conv) ?? { delivered: 0, read: 0 };
    // A member added later has nothing unread from before their join (their add counts).
    const read = Math.max(p.read, me.joinedSeq > 0 ? me.joinedSeq - 1 : 0);
    const members = [...conv.members].sort();
    return {
      id: e.conv,
      title: conv.title,
      direct: e.conv.startsWith('d'),
      members: members.slice(0, LIST_MEMBERS),
      memberCount: members.length,
      createdAt: conv.createdAt,
      activity: e.activity,
      last: e.lastSeq,
      lastMsg: newest[0] ?? null,
      delivered: Math.max(p.delivered, p.read),
      read: p.read,
      unread: unreadCount(e.lastSeq, read),
      ...(requestBy.has(e.conv) ? { request: requestBy.get(e.conv)! } : {}),
    };
  });
  const convs = entries.filter((x): x is InboxEntry => x !== null);
  const last = page.at(-1);
  return { convs, ...(last && rest.length > page.length ? { next: inboxCursor(last) } : {}) };
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
