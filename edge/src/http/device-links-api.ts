import { Hono } from 'hono';
import {
  DeviceAnnounceBody,
  DeviceId,
  DeviceLinkBody,
  LinkId,
  ProtocolError,
  type ConversationsResponse,
  type DeviceChangeResult,
  type DeviceLinkCreated,
  type DeviceLinkTaken,
  type KeysDeviceStatus,
} from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { callRegion } from '../internal/region-client.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import { errorFields, log } from '../log.ts';
import { caller, region, route } from './keys-api.ts';
import { ownDevice } from './own-device.ts';
import { readJson } from './read-json.ts';

/**
 * A user's devices for end-to-end encryption (bearer token of one of their devices):
 * - linking: an existing device leaves the user's identity key sealed under a code it shows
 *   (`POST /v1/devices/links`); the new device takes it once (`POST /v1/devices/links/:link/take`),
 *   opens it, uploads its KeyPackages, and announces itself (`POST /v1/devices/:device/announce`):
 *   every encrypted conversation of the user then waits for a commit that adds it;
 * - revocation (`DELETE /v1/devices/:device`, from any device of the user): the device is revoked
 *   for good in the key directory and every encrypted conversation of the user waits for a commit
 *   that removes it.
 * The server never holds the identity key, so it cannot add a device to a user by itself.
 */
export const deviceLinksApi = new Hono<{ Bindings: Env }>();

/** Conversations read per page and told at once when a device changes. */
const PAGE = 1000;
const CONCURRENCY = 8;

/** Tells every conversation of `user` (their encrypted ones act on it) that `device` was linked or revoked; how many acted. */
async function tellConversations(env: Env, op: 'link' | 'revoke', user: string, device: string, by: string): Promise<number> {
  const cfg = config(env);
  let after = '';
  let told = 0;
  for (;;) {
    let page;
    try {
      page = (await callRegion<ConversationsResponse>(cfg, '/internal/conversations', { pages: [{ user, device: by, after, limit: PAGE }] }, undefined, workerMetrics)).pages[0]!;
    } catch (err) {
      log('warn', 'device change: conversation list from region failed', { user, device, op, ...errorFields(err) });
      throw new ProtocolError('unavailable', 'the conversation list is unavailable; retry (the change is applied once per conversation)');
    }
    const convs = page.convs.map((c) => c.conv);
    for (let i = 0; i < convs.length; i += CONCURRENCY) {
      const results = await Promise.all(
        convs.slice(i, i + CONCURRENCY).map(async (conv) => env.CONVERSATIONS.get(env.CONVERSATIONS.idFromName(conv)).changeDevice({ op, user, device, by })),
      );
      for (const r of results) if (r.ok && r.seq !== null) told++;
    }
    if (!page.next) return told;
    after = page.next;
  }
}

/** `POST /v1/devices/links {"envelope"}` → 200 {link, expiresAt}: a sealed identity key waiting for a new device of the caller's user. */
deviceLinksApi.post(
  '/v1/devices/links',
  route(async (c) => {
    const me = await caller(c);
    const req = await readJson(c, DeviceLinkBody, 8 * 1024);
    return c.json(await region<DeviceLinkCreated>(c.env, '/internal/keys/links/put', { user: me.user, device: me.device, envelope: req.envelope }));
  }),
);

/** `POST /v1/devices/links/:link/take` → 200 {envelope, from}: once, to a device of the same user; else 404. */
deviceLinksApi.post(
  '/v1/devices/links/:link/take',
  route(async (c) => {
    const me = await caller(c);
    const link = LinkId.safeParse(c.req.param('link'));
    if (!link.success) throw new ProtocolError('not_found', 'no such device link');
    return c.json(await region<DeviceLinkTaken>(c.env, '/internal/keys/links/take', { user: me.user, link: link.data }));
  }),
);

/**
 * `POST /v1/devices/:device/announce {"via"?}` → 200 {device, conversations}: the caller's device,
 * linked and with KeyPackages uploaded, asks to be added to its user's encrypted conversations;
 * `via` (the device that linked it) is asked to commit. A revoked device is refused.
 */
deviceLinksApi.post(
  '/v1/devices/:device/announce',
  route(async (c) => {
    const me = await ownDevice(c, 'announce only itself');
    const via = (await readJson(c, DeviceAnnounceBody, 1024)).via ?? me.device;
    const status = await region<KeysDeviceStatus>(c.env, '/internal/keys/status', { user: me.user, device: me.device });
    if (status.revoked) throw new ProtocolError('forbidden', `device ${me.device} was revoked`);
    if (!status.uploaded) throw new ProtocolError('conflict', 'upload KeyPackages first: the conversations claim one to add this device');
    const conversations = await tellConversations(c.env, 'link', me.user, me.device, via);
    return c.json({ device: me.device, conversations } satisfies DeviceChangeResult);
  }),
);

/** `DELETE /v1/devices/:device` → 200 {device, conversations}: revokes a device of the caller's user for good (from any of their devices). */
deviceLinksApi.delete(
  '/v1/devices/:device',
  route(async (c) => {
    const me = await caller(c);
    const device = DeviceId.safeParse(c.req.param('device'));
    if (!device.success) throw new ProtocolError('invalid_frame', 'device: 1-64 of [A-Za-z0-9._-]');
    await region(c.env, '/internal/keys/revoke', { user: me.user, device: device.data, by: me.device });
    const conversations = await tellConversations(c.env, 'revoke', me.user, device.data, me.device);
    return c.json({ device: device.data, conversations } satisfies DeviceChangeResult);
  }),
);
