import type { BlocksList, PresenceSettings, PresenceVisibility } from '../consent.ts';
import type { InboxEntry, InboxResponse } from '../internal.ts';
import { call } from './http.ts';

/** A conversation the user has not accepted yet (a message request): accept, decline or block. */
export function isRequest(entry: InboxEntry): entry is InboxEntry & { request: NonNullable<InboxEntry['request']> } {
  return entry.request !== undefined;
}

/**
 * Consent over the edge's HTTP API (PROTOCOL.md, "Consent"): the conversation list with its
 * requests, answering them, blocks, and who sees this user's presence. Refusals are HttpErrors
 * with the server's code (`blocked`, `request_pending`, `not_member`, `invalid_frame`, …).
 */
export class ConsentApi {
  constructor(
    private readonly baseUrl: string,
    private readonly token: () => string | Promise<string>,
  ) {}

  private async req<T>(method: string, path: string, body?: unknown): Promise<T> {
    return call<T>(`${this.baseUrl}${path}`, { method, headers: { authorization: `Bearer ${await this.token()}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  }

  /** A page of the conversation list, newest activity first; requests carry `request: {by, at}`. */
  conversations(opts: { after?: string; limit?: number } = {}): Promise<InboxResponse> {
    const q = new URLSearchParams();
    if (opts.after) q.set('after', opts.after);
    if (opts.limit !== undefined) q.set('limit', String(opts.limit));
    return this.req('GET', `/v1/conversations${q.size ? `?${q}` : ''}`);
  }

  /** The message requests on the first page of the list (`limit` conversations looked at). */
  async requests(limit = 200): Promise<InboxEntry[]> {
    return (await this.conversations({ limit })).convs.filter(isRequest);
  }

  /** Accepts the request of `conv`: the asker now sees this user's presence, typing and receipts. `accepted` false: there was none. */
  accept(conv: string): Promise<{ accepted: boolean }> {
    return this.req('POST', `/v1/conversations/${encodeURIComponent(conv)}/accept`);
  }

  /** Declines the request of `conv`: this user leaves it; with `block`, the asker is blocked too. */
  decline(conv: string, opts: { block?: boolean } = {}): Promise<{ seq: number | null; blocked: boolean }> {
    return this.req('POST', `/v1/conversations/${encodeURIComponent(conv)}/decline`, opts.block ? { block: true } : {});
  }

  block(user: string): Promise<{ user: string; blocked: true }> {
    return this.req('POST', `/v1/blocks/${encodeURIComponent(user)}`);
  }

  unblock(user: string): Promise<{ user: string; blocked: false }> {
    return this.req('DELETE', `/v1/blocks/${encodeURIComponent(user)}`);
  }

  async blocks(): Promise<BlocksList['blocks']> {
    return (await this.req<BlocksList>('GET', '/v1/blocks')).blocks;
  }

  async presenceVisibility(): Promise<PresenceVisibility> {
    return (await this.req<PresenceSettings>('GET', '/v1/settings/presence')).visibility;
  }

  async setPresenceVisibility(visibility: PresenceVisibility): Promise<PresenceVisibility> {
    return (await this.req<PresenceSettings>('PUT', '/v1/settings/presence', { visibility })).visibility;
  }
}
