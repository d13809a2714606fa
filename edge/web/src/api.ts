import { HttpError } from '@switchboard/protocol/client';
import type { Msg } from '@switchboard/protocol';

export interface ListedConversation {
  id: string;
  title: string | null;
  members: string[];
  memberCount: number;
  direct: boolean;
  last: number;
  lastMsg: Msg | null;
  /** The caller's positions and unread count (server-side read receipts). */
  delivered: number;
  read: number;
  unread: number;
}

/** A member with their delivered and read positions. */
export interface MemberPositions {
  user: string;
  delivered: number;
  read: number;
}

/** Every page of `GET /v1/conversations` (up to `maxPages`). */
export async function listConversations(base: string, token: string, maxPages = 10): Promise<ListedConversation[]> {
  const out: ListedConversation[] = [];
  let after = '';
  for (let i = 0; i < maxPages; i++) {
    const res = await fetch(`${base}/v1/conversations?limit=200${after ? `&after=${encodeURIComponent(after)}` : ''}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json().catch(() => ({}))) as { convs?: ListedConversation[]; next?: string; error?: { code: string; message: string } };
    if (!res.ok) throw new HttpError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
    out.push(...(body.convs ?? []));
    if (!body.next) break;
    after = body.next;
  }
  return out;
}

/** The first page of a conversation's members, by id (`GET /v1/conversations/:id`), their count and positions. */
export async function conversationMembers(base: string, token: string, conv: string, limit = 200): Promise<{ members: string[]; count: number; positions: MemberPositions[] }> {
  const res = await fetch(`${base}/v1/conversations/${encodeURIComponent(conv)}?limit=${limit}`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json().catch(() => ({}))) as { members?: MemberPositions[]; count?: number; error?: { code: string; message: string } };
  if (!res.ok) throw new HttpError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
  const members = (body.members ?? []).map((m) => m.user);
  return { members, count: body.count ?? members.length, positions: body.members ?? [] };
}
