import { Hono } from 'hono';
import { RevokeTokensRequest, parseJsonBody } from '@switchboard/protocol';
import { config, type Env } from '../config.ts';
import { userGateways } from '../gateway/placement.ts';
import { userParam } from '../http/params.ts';
import { gatewayStub } from '../gateway/stub.ts';
import { verifyInternal } from '../internal/internal-auth.ts';
import { errorFields, log } from '../log.ts';
import { revoke } from './revocations.ts';

/**
 * Operator routes, signed like every internal call (INTERNAL_SECRET: the HMAC, timestamp and
 * nonce of protocol/src/signing.ts, as the region signs its calls; scripts can sign with
 * `signRequest`).
 */
export const tokenAdminRoutes = new Hono<{ Bindings: Env }>();

/**
 * `POST /internal/users/:user/revoke-tokens`: the user's tokens issued before now (or `before`)
 * are refused from here on (the time is kept in the user's RevocationsDO shard, in storage), and
 * every socket such a token opened is closed with 4001 on each gateway that may hold the user
 * (the configured placement, or every placement).
 */
tokenAdminRoutes.post('/internal/users/:user/revoke-tokens', async (c) => {
  const cfg = config(c.env);
  const body = await verifyInternal(c.req.raw, c.env, cfg.internalSecret);
  const user = userParam(c.req.param('user'));
  const now = Math.floor(Date.now() / 1000);
  const req = body.trim() === '' ? {} : parseJsonBody(body, RevokeTokensRequest);
  const before = await revoke(c.env.REVOCATIONS, user, Math.min(req.before ?? now, now));
  const gateways = userGateways(cfg.gatewayPlacement, user, cfg.gatewayShards);
  const answers = await Promise.allSettled(gateways.map((gw) => gatewayStub(c.env.GATEWAYS, gw).revokeTokens(gw, user, before)));
  let closed = 0;
  let failed = 0;
  answers.forEach((a, i) => {
    if (a.status === 'fulfilled') closed += a.value.closed;
    else {
      failed++;
      log('warn', 'revoke-tokens: a gateway did not answer', { gw: gateways[i], user: user, ...errorFields(a.reason) });
    }
  });
  log('info', 'tokens revoked', { user: user, before, closed, failed });
  return c.json({ user: user, before, closed, gateways: gateways.length - failed, failed });
});
