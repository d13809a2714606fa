import { config, type Env } from '../config.ts';
import { gatewayName, placementOfRequest } from '../gateway/placement.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { errorFields, log } from '../log.ts';
import { workerMetrics } from '../metrics/worker-metrics.ts';
import type { LimitSpend } from './gateway-limits.ts';
import { RateLimited } from './refusal.ts';

/**
 * A quota spend from the Worker, kept by the gateway of `subject` in the placement the request
 * arrived at (a user's own gateway, the one that holds their sockets and per-user frame limits;
 * an address's gateway by the hash of `ip:<address>`). Throws RateLimited when refused, before the
 * caller calls or writes anything else. A gateway that does not answer lets the request through,
 * logged: a quota is not worth refusing service over.
 */
export async function spendQuota(env: Env, req: Request, subject: string, spends: LimitSpend[]): Promise<void> {
  const cfg = config(env);
  const gw = gatewayName(placementOfRequest(cfg.gatewayPlacement, req), subject, cfg.gatewayShards);
  let r;
  try {
    r = await gatewayStub(env.GATEWAYS, gw).spend(gw, spends);
  } catch (err) {
    log('warn', 'quota check failed; let through', { gw, limits: spends.map((s) => s.limit), ...errorFields(err) });
    return;
  }
  if (r.ok) return;
  workerMetrics.inc('switchboard_edge_rate_limited_total', r.limit);
  throw new RateLimited(r.limit, r.retryAfterMs, r.message);
}

/**
 * The client's address: Cloudflare's `CF-Connecting-IP` (set by Cloudflare on every request,
 * never the client's own). A local runtime has none (null): there is no address to limit, and
 * counting every local client in one bucket would make one gateway take a call per connect.
 */
export function clientAddress(req: Request): string | null {
  return req.headers.get('cf-connecting-ip');
}

/** The gateway subject that keeps an address's quotas. */
export function addressSubject(address: string): string {
  return `ip:${address}`;
}
