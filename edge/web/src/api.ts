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
  /** A message request the caller has not answered (consent). */
  request?: { by: string; at: number };
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

/** The first page of a conversation's members, by id (`GET /v1/conversations/:id`), their count and positions; whether it is end-to-end encrypted. */
export async function conversationMembers(base: string, token: string, conv: string, limit = 200): Promise<{ members: string[]; count: number; positions: MemberPositions[]; e2e: boolean }> {
  const body = await getJson<{ members?: MemberPositions[]; count?: number; e2e?: boolean }>(base, token, `/v1/conversations/${encodeURIComponent(conv)}?limit=${limit}`);
  const members = (body.members ?? []).map((m) => m.user);
  return { members, count: body.count ?? members.length, positions: body.members ?? [], e2e: body.e2e === true };
}

/** The devices of `user` that published MLS KeyPackages, with their identity keys (base64url) (`GET /v1/users/:user/devices`). */
export async function keyedDevices(base: string, token: string, user: string): Promise<{ device: string; identityKey: string }[]> {
  return (await getJson<{ devices?: { device: string; identityKey: string }[] }>(base, token, `/v1/users/${encodeURIComponent(user)}/devices`)).devices ?? [];
}

/** `POST /v1/conversations`; `created`: 201 (false: the direct conversation existed, 200). */
export async function postConversation(base: string, token: string, req: { members: string[]; title?: string; direct?: boolean; e2e?: boolean }): Promise<{ id: string; members: string[]; direct: boolean; created: boolean }> {
  const res = await fetch(`${base}/v1/conversations`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(req) });
  const body = (await res.json().catch(() => ({}))) as { id?: string; members?: string[]; direct?: boolean; error?: { code: string; message: string } };
  if (!res.ok || !body.id) throw new HttpError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
  return { id: body.id, members: body.members ?? [], direct: body.direct === true, created: res.status === 201 };
}

async function getJson<T>(base: string, token: string, path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json().catch(() => ({}))) as T & { error?: { code: string; message: string } };
  if (!res.ok) throw new HttpError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
  return body;
}
