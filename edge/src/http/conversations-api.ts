import { Hono } from 'hono';
import { AddMembersRequest, ConvId, MlsCommitRequest, ProtocolError, SetRoleRequest, UserId } from '@switchboard/protocol';
import { caller, conversationStub as conversation, userParam as user } from './params.ts';
import { config, type Env } from '../config.ts';
import { readJson } from './read-json.ts';
import { consentCheck } from './consent-api.ts';
import { spendQuota } from '../limits/quota.ts';
import type { Result } from '../conversation/sequencer.ts';

/**
 * Group membership and conversation details over HTTP (bearer token). Every change is sequenced
 * by the conversation's ConversationDO: it answers with the seq of the system event it became
 * (null when it changed nothing) and the new membership version.
 */
export const conversationsApi = new Hono<{ Bindings: Env }>();

const MEMBERS_PAGE_DEFAULT = 100;
const MEMBERS_PAGE_MAX = 1000;

type Change = Result<{ seq: number | null; ver: number; users: string[] }>;

/** A change's outcome as the HTTP answer; a refusal as its typed error. */
function changed(r: Change): { seq: number | null; ver: number; users: string[] } {
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  return { seq: r.seq, ver: r.ver, users: r.users };
}

/**
 * `POST /v1/conversations/:id/mls/commit {"cmid","commit","groupInfo","welcome"?}` → 200 {seq, ts,
 * epoch}: an end-to-end encrypted conversation's commit, sequenced (the first for its epoch wins;
 * any other is `stale_epoch`). A retry with the same cmid gets the same seq.
 */
conversationsApi.post('/v1/conversations/:id/mls/commit', async (c) => {
  const me = await caller(c);
  const req = await readJson(c, MlsCommitRequest, 4 * 1024 * 1024);
  const stub = conversation(c.env, c.req.param('id'));
  const r = await stub.commit({ from: me.user, dev: me.device, cmid: req.cmid, commit: req.commit, groupInfo: req.groupInfo, ...(req.welcome ? { welcome: req.welcome } : {}) });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  return c.json({ seq: r.seq, ts: r.ts, epoch: r.epoch, duplicate: r.duplicate });
});

/**
 * `GET /v1/conversations/:id/mls` → 200 {epoch, rekeyPending, pendingAdds, pendingRemoves,
 * pendingLinks, pendingRevokes, committer, groupInfo, welcomes:[{seq, welcome}]}: what a member's
 * device needs to commit what waits (and whether it is the device asked to), to join (the
 * Welcomes naming its user since their join) or rejoin by external commit (the last GroupInfo).
 */
conversationsApi.get('/v1/conversations/:id/mls', async (c) => {
  const me = await caller(c);
  const stub = conversation(c.env, c.req.param('id'));
  const r = await stub.mlsState({ user: me.user });
  if (!r.ok) throw new ProtocolError(r.code, r.message);
  const { ok: _ok, ...view } = r;
  return c.json(view);
});

/** `POST /v1/conversations/:id/members {"users":[…],"role"?}` → 200 {seq, ver, users}: who was added. */
conversationsApi.post('/v1/conversations/:id/members', async (c) => {
  const me = await caller(c);
  const req = await readJson(c, AddMembersRequest);
  const stub = conversation(c.env, c.req.param('id'));
  // Quotas first: a refusal calls and writes nothing.
  await spendQuota(c.env, c.req.raw, me.user, [{ limit: 'member_add', key: me.user, cost: req.users.length }]);
  // Consent: a user with a block either way is left out; who shares no accepted conversation with the caller is added as a request.
  const consent = await consentCheck(config(c.env), me.user, req.users);
  // Even when that leaves nobody, the conversation answers (membership and admin are checked as usual).
  const users = req.users.filter((u) => !consent.blocked.includes(u));
  return c.json(changed(await stub.changeMembers({ by: me.user, dev: me.device, op: 'add', users, ...(req.role ? { role: req.role } : {}) }, { requests: consent.requests })));
});

/** `DELETE /v1/conversations/:id/members/:user` → 200 {seq, ver, users}. Removing yourself is leaving. */
conversationsApi.delete('/v1/conversations/:id/members/:user', async (c) => {
  const me = await caller(c);
  const stub = conversation(c.env, c.req.param('id'));
  return c.json(changed(await stub.changeMembers({ by: me.user, dev: me.device, op: 'remove', users: [user(c.req.param('user'))] })));
});

/** `PATCH /v1/conversations/:id/members/:user {"role":"admin"|"member"}` → 200 {seq, ver, users}: owners only. */
conversationsApi.patch('/v1/conversations/:id/members/:user', async (c) => {
  const me = await caller(c);
  const req = await readJson(c, SetRoleRequest, 4096);
  const stub = conversation(c.env, c.req.param('id'));
  return c.json(changed(await stub.changeMembers({ by: me.user, dev: me.device, op: 'role', users: [user(c.req.param('user'))], role: req.role })));
});

/**
 * `GET /v1/conversations/:id?after=<user>&limit=<n>` → the conversation with a page of its
 * current members by id (`next` is the `after` of the next page), each with their delivered and
 * read positions (receipts for large groups, where they are not relayed). Members only.
 */
conversationsApi.get('/v1/conversations/:id', async (c) => {
  const me = await caller(c);
  const stub = conversation(c.env, c.req.param('id'));
  const after = c.req.query('after') ?? '';
  if (after !== '') user(after);
  const limitText = c.req.query('limit');
  const limit = limitText === undefined ? MEMBERS_PAGE_DEFAULT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MEMBERS_PAGE_MAX) throw new ProtocolError('invalid_frame', `limit: expected an integer in 1..${MEMBERS_PAGE_MAX}`);
  const d = await stub.details({ user: me.user, after, limit });
  if (!d.ok) throw new ProtocolError(d.code, d.message);
  return c.json({
    id: d.conv,
    title: d.title,
    direct: d.direct,
    history: d.history,
    last: d.last,
    ver: d.ver,
    count: d.count,
    members: d.members.map((m) => ({ user: m.user, role: m.role, joined: m.joinedSeq, delivered: m.delivered, read: m.read })),
    ...(d.next ? { next: d.next } : {}),
    e2e: d.mls !== undefined,
    ...(d.mls ? { mls: d.mls } : {}),
    ...(d.request ? { request: d.request } : {}),
  });
});
