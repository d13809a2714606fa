// The Worker of `npm run bench:do-rpc` (scripts/bench/do-rpc.ts): how many Durable Object calls per
// second one workerd process makes, the floor under every delivery of the edge (one SessionDO call
// per recipient). GET /?mode=&n=&ms= runs rounds of `n` calls for `ms` and answers the count.
import { DurableObject } from 'cloudflare:workers';

export class Target extends DurableObject {
  /** Like SessionDO.deliver: serialize each message for a socket, answer the devices. */
  async deliver(deliveries) {
    let bytes = 0;
    for (const d of deliveries) bytes += JSON.stringify(d.msg).length;
    return { sockets: bytes > 0 ? 1 : 0, devices: ['d1'] };
  }
  /** The same delivery already serialized by the caller: the callee only writes it out. */
  async deliverText(frames) {
    let bytes = 0;
    for (const f of frames) bytes += f.text.length;
    return { sockets: bytes > 0 ? 1 : 0, devices: ['d1'] };
  }
  async noop() {
    return 1;
  }
}

class Plain {
  async deliver(deliveries) {
    let bytes = 0;
    for (const d of deliveries) bytes += JSON.stringify(d.msg).length;
    return { sockets: bytes > 0 ? 1 : 0, devices: ['d1'] };
  }
}

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    const mode = url.searchParams.get('mode') ?? 'rpc';
    const n = Number(url.searchParams.get('n') ?? 1000);
    const ms = Number(url.searchParams.get('ms') ?? 3000);
    const msg = { t: 'msg', conv: 'gBenchConversation0000', seq: 1, cmid: 'm-1-bench', from: 'fan00000', dev: 'sender', ts: Date.now(), body: 'x'.repeat(64) };
    const targets =
      mode === 'plain'
        ? Array.from({ length: n }, () => new Plain())
        : Array.from({ length: n }, (_, i) => env.TARGETS.get(env.TARGETS.idFromName(`user${i}`)));
    const text = JSON.stringify(msg);
    const call =
      mode === 'noop'
        ? (t) => t.noop()
        : mode === 'text'
          ? (t) => t.deliverText([{ conv: msg.conv, seq: msg.seq, text }])
          : mode === 'fresh'
            ? // A stub looked up by name for every call, as against one kept from the first.
              (_t, i) => env.TARGETS.get(env.TARGETS.idFromName(`user${i}`)).deliver([{ user: `user${i}`, msg }])
            : (t, i) => t.deliver([{ user: `user${i}`, msg }]);
    const t0 = Date.now();
    let calls = 0;
    while (Date.now() - t0 < ms) {
      await Promise.all(targets.map(call));
      calls += n;
    }
    return Response.json({ mode, n, calls, ms: Date.now() - t0 });
  },
};
