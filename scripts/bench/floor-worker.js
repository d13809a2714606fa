// The runtime's floor for `npm run bench:connections` (scripts/bench/connections.ts): the least a
// Worker with Durable Objects can hold an idle device socket with. GET /v1/connect?token= hands the
// upgrade to one of GATEWAY_SHARDS objects chosen by user (as the edge's gateways shard), which
// accepts it as a hibernatable socket and speaks just enough of the protocol for the client SDK
// to come online: `hello`, `changes` with nothing changed for `resume`, and `pong` for the SDK's
// heartbeat, answered by the runtime without waking the object. The token is read, not verified.
//
// Compression as the edge's: decided by the `no_web_socket_compression` compatibility flag, which
// connections.ts sets as wrangler.toml does (and drops with --compression).
import { DurableObject } from 'cloudflare:workers';

const GATEWAY_SHARDS = 16;

/** The token's claims, unverified: `sub` is the user, `dev` the device. */
function claims(token) {
  try {
    const b64 = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(b64));
  } catch {
    return null;
  }
}

/** FNV-1a of the user, modulo the shards. */
function shardOf(user) {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 0x01000193);
  return (h >>> 0) % GATEWAY_SHARDS;
}

export class Gateway extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair('{"t":"ping"}', '{"t":"pong"}'));
  }

  async fetch(request) {
    const user = request.headers.get('x-sb-user');
    const dev = request.headers.get('x-sb-device');
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server, [user]);
    server.send(JSON.stringify({ t: 'hello', user, dev, v: 1 }));
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    let f;
    try {
      f = JSON.parse(message);
    } catch {
      return;
    }
    if (f.t === 'resume') ws.send(JSON.stringify({ t: 'changes', rid: f.rid, convs: [] }));
    else if (f.t === 'ping') ws.send(JSON.stringify({ t: 'pong', rid: f.rid, ts: Date.now() }));
  }

  async webSocketClose(ws, code, reason) {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/healthz') return new Response('ok');
    if (url.pathname !== '/v1/connect' || request.headers.get('upgrade')?.toLowerCase() !== 'websocket') return new Response('not found', { status: 404 });
    const who = claims(url.searchParams.get('token') ?? '');
    if (!who || typeof who.sub !== 'string' || typeof who.dev !== 'string') return new Response('bad token', { status: 401 });
    const headers = new Headers(request.headers);
    headers.set('x-sb-user', who.sub);
    headers.set('x-sb-device', who.dev);
    const stub = env.GATEWAYS.get(env.GATEWAYS.idFromName(`gateway-${shardOf(who.sub)}`));
    return stub.fetch(new Request(request.url, { headers }));
  },
};
