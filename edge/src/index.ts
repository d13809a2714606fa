import { app } from './app.ts';
import type { Env } from './env.ts';

export { SessionDO } from './session-do.ts';
export { ConversationDO } from './conversation-do.ts';
export { ReplayGuardDO } from './replay-guard-do.ts';

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
