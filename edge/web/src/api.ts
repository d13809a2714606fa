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
