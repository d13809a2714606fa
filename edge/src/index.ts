import { WorkerEntrypoint } from 'cloudflare:workers';
import type { Env } from './config.ts';
import { app } from './http/app.ts';

export { GatewayDO } from './gateway/gateway-do.ts';
export { ConversationDO } from './conversation/conversation-do.ts';
export { ReplayGuardDO } from './internal/replay-guard-do.ts';
export { RevocationsDO } from './auth/revocations-do.ts';

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;

/**
 * The same Worker as a named entrypoint, for a local runtime to serve on its own socket
 * (scripts/edge-runner.ts): clients then reach it directly, as on Cloudflare, rather than through
 * the local runtime's own entry and assets workers, which add a hop to every frame and negotiate
 * WebSocket compression by their own settings.
 */
export class Edge extends WorkerEntrypoint<Env> {
  override fetch(request: Request): Promise<Response> {
    return Promise.resolve(app.fetch(request, this.env, this.ctx));
  }
}
