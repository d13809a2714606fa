import { Hono } from 'hono';
import {
  ConvId,
  DeclineRequest,
  PresenceSettingsRequest,
  ProtocolError,
  UserId,
  directConvId,
  isErrorCode,
  type BlocksList,
  type ConsentCheckResponse,
  type PresenceSettings,
} from '@switchboard/protocol';
import { caller, conversationStub as conversation, userParam } from './params.ts';
import { config, type EdgeConfig, type Env } from '../config.ts';
import { callRegion, RegionError } from '../internal/region-client.ts';
import { errorFields, log } from '../log.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { readJson } from './read-json.ts';

/**
 * Consent over HTTP (PROTOCOL.md, "Consent"): answering message requests, blocks, and who sees
 * the caller's presence. Durable state lives in the region (consent-store.ts there); a
 * conversation's requests and its direct blocks in its ConversationDO (conversation/consent.ts).
 */
export const consentApi = new Hono<{ Bindings: Env }>();

/** A consent call to the region: its typed refusal passes on; anything else is `unavailable`. */
export async function consentCall<T>(cfg: EdgeConfig, path: string, body: unknown): Promise<T> {
  try {
    return await callRegion<T>(cfg, path, body, undefined, workerMetrics);
  } catch (err) {
    // The region's refusal of the request itself passes on; its refusal of the edge (a bad signature, 401) is ours to log.
    if (err instanceof RegionError && err.refusal && isErrorCode(err.refusal.code) && err.status < 500 && err.status !== 401) throw new ProtocolError(err.refusal.code, err.refusal.message);
    log('warn', 'consent call to region failed', { path, ...errorFields(err) });
    throw new ProtocolError('unavailable', 'consent settings are unavailable; retry later');
  }
}

/**
 * Before `user` creates a conversation with `others` or adds them: who has a block with them
 * (either way) and who gets it as a message request.
 */
export function consentCheck(cfg: EdgeConfig, user: string, others: string[]): Promise<ConsentCheckResponse> {
  const list = [...new Set(others.filter((o) => o !== user))];
  if (!list.length) return Promise.resolve({ blocked: [], requests: [] });
  return consentCall<ConsentCheckResponse>(cfg, '/internal/consent/check', { user, others: list }).then((r) => (cfg.messageRequests ? r : { ...r, requests: [] }));
}

/** Stores the block in the region, then applies it to the pair's direct conversation (if there is one). */
async function setBlock(env: Env, cfg: EdgeConfig, user: string, other: string, on: boolean): Promise<void> {
  if (other === user) throw new ProtocolError('invalid_frame', 'you cannot block yourself');
  await consentCall(cfg, '/internal/consent/block', { user, other, on });
  const direct = await directConvId(user, other);
  const r = await env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(direct)).block({ blocker: user, blocked: other, on });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  log('info', on ? 'block set' : 'block lifted', { user, other, direct: r.applied });
}

/** `POST /v1/blocks/:user` → 200 {user, blocked: true}. Idempotent. */
consentApi.post('/v1/blocks/:user', async (c) => {
  const me = await caller(c);
  const other = userParam(c.req.param('user'));
  await setBlock(c.env, config(c.env), me.user, other, true);
  return c.json({ user: other, blocked: true });
});

/** `DELETE /v1/blocks/:user` → 200 {user, blocked: false}. Idempotent. */
consentApi.delete('/v1/blocks/:user', async (c) => {
  const me = await caller(c);
  const other = userParam(c.req.param('user'));
  await setBlock(c.env, config(c.env), me.user, other, false);
  return c.json({ user: other, blocked: false });
});

/** `GET /v1/blocks` → 200 {blocks: [{user, at}]}, newest first. */
consentApi.get('/v1/blocks', async (c) => {
  const me = await caller(c);
  return c.json(await consentCall<BlocksList>(config(c.env), '/internal/consent/blocks', { user: me.user }));
});

/** `GET /v1/settings/presence` → 200 {visibility}. */
consentApi.get('/v1/settings/presence', async (c) => {
  const me = await caller(c);
  return c.json(await consentCall<PresenceSettings>(config(c.env), '/internal/consent/visibility', { user: me.user }));
});

/** `PUT /v1/settings/presence {"visibility":"everyone"|"contacts"|"nobody"}` → 200 {visibility}. */
consentApi.put('/v1/settings/presence', async (c) => {
  const me = await caller(c);
  const req = await readJson(c, PresenceSettingsRequest, 4096);
  return c.json(await consentCall<PresenceSettings>(config(c.env), '/internal/consent/visibility', { user: me.user, visibility: req.visibility }));
});

/** `POST /v1/conversations/:id/accept` → 200 {accepted}: false when there was no request (already accepted). */
consentApi.post('/v1/conversations/:id/accept', async (c) => {
  const me = await caller(c);
  const r = await conversation(c.env, c.req.param('id')).accept({ user: me.user });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  return c.json({ accepted: r.accepted });
});

/**
 * `POST /v1/conversations/:id/decline {"block"?: true}` → 200 {seq, blocked}: the caller leaves the
 * conversation (seq of their leave); with `block`, whoever asked is blocked too.
 */
consentApi.post('/v1/conversations/:id/decline', async (c) => {
  const me = await caller(c);
  const text = await c.req.text();
  if (text.length > 4096) throw new ProtocolError('too_large', 'body exceeds 4096 bytes');
  const req = text.trim() === '' ? { success: true as const, data: {} } : DeclineRequest.safeParse(safeJson(text));
  if (!req.success) throw new ProtocolError('invalid_frame', 'body: expected {"block"?: boolean}');
  const block = req.data.block === true;
  const r = await conversation(c.env, c.req.param('id')).decline({ user: me.user, dev: me.device });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  if (block) await setBlock(c.env, config(c.env), me.user, r.by, true);
  return c.json({ seq: r.seq, blocked: block });
});

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError('bad_json');
  }
}
