import { z } from 'zod';
import { LIMITS } from './limits.ts';

/** User and device ids: 1–64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit. */
export const PRINCIPAL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Conversation ids are minted by the edge; clients treat them as opaque. */
export const CONV_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const UserId = z.string().regex(PRINCIPAL_ID_PATTERN, 'user id: 1-64 of [A-Za-z0-9._-]');
export const DeviceId = z.string().regex(PRINCIPAL_ID_PATTERN, 'device id: 1-64 of [A-Za-z0-9._-]');
export const ConvId = z.string().regex(CONV_ID_PATTERN, 'conversation id: 1-64 of [A-Za-z0-9_-]');
/**
 * A gateway (connection server) Durable Object: `gw:<placement>:<shard>`. The placement is a
 * Cloudflare location hint (`weur`, `enam`, …) or a configured name such as `local`; the shard is
 * hash(user) mod GATEWAY_SHARDS, so a user's devices in one placement share a gateway.
 */
export const GATEWAY_ID_PATTERN = /^gw:[a-z0-9-]{1,32}:\d{1,5}$/;
export const GatewayId = z.string().regex(GATEWAY_ID_PATTERN, 'gateway id: gw:<placement>:<shard>');
/**
 * A socket's connection id on its gateway: a number that only grows, across the gateway's
 * restarts too (it starts from the clock), so "every socket up to n" names the sockets that were
 * connected when a delivery was made.
 */
export const ConnId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A client's message id, unique per sender; the server maps it to one seq forever. */
export const Cmid = z.string().min(1).max(LIMITS.maxIdLength);
export const Rid = z.string().max(LIMITS.maxIdLength);
export const Seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

/** A fresh conversation id: 128 random bits, base64url. */
export function newConvId(): string {
  return 'g' + base64url(crypto.getRandomValues(new Uint8Array(16)));
}

function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const x of bytes) s += String.fromCharCode(x);
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/** The id of the direct conversation of two users: the same for the pair in either order. */
export async function directConvId(a: string, b: string): Promise<string> {
  const pair = [a, b].sort().join('\n');
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(pair));
  return 'd' + base64url(new Uint8Array(digest).slice(0, 16));
}
