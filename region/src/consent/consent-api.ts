import type { Hono } from 'hono';
import { BlockRequest, BlocksRequest, ConsentCheckRequest, LIMITS, ProtocolError, VisibilityRequest, parseJsonBody, type BlocksList, type ConsentChange, type ConsentCheckResponse, type ConvEvent, type PresenceSettings } from '@switchboard/protocol';
import type { Logger } from '../log.ts';
import type { Contacts } from '../presence/contacts.ts';
import type { Storage } from '../storage/storage.ts';

type Env = { Variables: { rawBody: string } };

function body(c: { get(key: 'rawBody'): string }): string {
  const text = c.get('rawBody');
  if (text.length > LIMITS.maxInternalBodyBytes) throw new ProtocolError('too_large');
  return text;
}

export interface ConsentDeps {
  storage: Storage;
  contacts: Contacts;
  log: Logger;
}

/**
 * A conversation's consent event (from its outbox, in order with its messages): unanswered
 * requests recorded or cleared, and the cached relations of everyone in it dropped, so presence
 * and the next check see the change at once.
 */
export async function applyConsentChanges(deps: ConsentDeps, conv: string, changes: ConsentChange[]): Promise<void> {
  const requests = changes.filter((c) => c.state === 'request').map((c) => ({ conv, user: c.user, by: c.by, at: c.ts }));
  const cleared = changes.filter((c) => c.state !== 'request').map((c) => c.user);
  if (requests.length) await deps.storage.setRequests(requests);
  if (cleared.length) await deps.storage.clearRequests(conv, cleared);
  await forgetConversation(deps, conv, changes.flatMap((c) => [c.user, c.by]));
  for (const c of changes) deps.log.info('consent change', { conv, user: c.user, state: c.state, by: c.by });
}

/** The `request` changes among a batch of outbox events, stored ahead of the rest (see /internal/events). */
export async function applyEarlyRequests(deps: Pick<ConsentDeps, 'storage'>, conv: string, events: ConvEvent[]): Promise<void> {
  const requests = events.flatMap((e) => (e.kind === 'consent' ? e.changes.filter((c) => c.state === 'request').map((c) => ({ conv, user: c.user, by: c.by, at: c.ts })) : []));
  if (requests.length) await deps.storage.setRequests(requests);
}

/** The relations of a conversation's members (and of `also`) changed: drop them from the cache. */
export async function forgetConversation(deps: Pick<ConsentDeps, 'storage' | 'contacts'>, conv: string, also: string[]): Promise<void> {
  const stored = await deps.storage.getConversation(conv);
  deps.contacts.forgetRelations(new Set([...also, ...(stored?.members ?? [])]));
}

/**
 * The signed consent API the edge calls (behind the app's internal auth): `/internal/consent/check`
 * before a conversation is created or members added; `/internal/consent/block` and `/blocks`;
 * `/internal/consent/visibility` to read or set who sees a user's presence.
 */
export function registerConsentApi(app: Hono<Env>, deps: ConsentDeps): void {
  const { storage, contacts, log } = deps;

  app.post('/internal/consent/check', async (c) => {
    const req = parseJsonBody(body(c), ConsentCheckRequest);
    return c.json((await contacts.check(req.user, req.others)) satisfies ConsentCheckResponse);
  });

  app.post('/internal/consent/block', async (c) => {
    const req = parseJsonBody(body(c), BlockRequest);
    if (req.other === req.user) throw new ProtocolError('invalid_frame', 'you cannot block yourself');
    if (req.on) await storage.block(req.user, req.other, Date.now());
    else await storage.unblock(req.user, req.other);
    contacts.forgetBlock(req.user, req.other);
    log.info(req.on ? 'user blocked' : 'user unblocked', { user: req.user, other: req.other });
    return c.json({ blocked: req.on });
  });

  app.post('/internal/consent/blocks', async (c) => {
    const req = parseJsonBody(body(c), BlocksRequest);
    return c.json({ blocks: await storage.blocksOf(req.user) } satisfies BlocksList);
  });

  app.post('/internal/consent/visibility', async (c) => {
    const req = parseJsonBody(body(c), VisibilityRequest);
    if (req.visibility) {
      await storage.setPresenceVisibility(req.user, req.visibility);
      contacts.forgetVisibility(req.user);
      log.info('presence visibility set', { user: req.user, visibility: req.visibility });
      return c.json({ visibility: req.visibility } satisfies PresenceSettings);
    }
    const stored = await storage.presenceVisibility([req.user]);
    return c.json({ visibility: stored.get(req.user) ?? 'everyone' } satisfies PresenceSettings);
  });
}
