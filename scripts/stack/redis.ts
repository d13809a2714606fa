// Redis: prefer the machine's own Redis on 127.0.0.1:<REDIS_PORT>; start `redis-server` only if nothing answers.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { HOST, type StackConfig } from './config.ts';
import type { Engine, ProbeResult } from './engine.ts';
import { commandExists, commandLine, spawnDetached } from './process.ts';

/** Raw RESP `PING` over a socket; resolves with the reply line (e.g. "+PONG") or throws. */
export function redisPing(port: number, host = HOST, timeoutMs = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let buf = '';
    const done = (err: Error | null, reply?: string) => {
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    sock.setTimeout(timeoutMs, () => done(new Error('timeout')));
    sock.once('error', (e) => done(e));
    sock.once('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) done(null, buf.slice(0, nl));
    });
  });
}

export function redisEngine(cfg: StackConfig): Engine {
  const r = cfg.redis;
  const redisServer = process.env.REDIS_SERVER || 'redis-server';
  return {
    name: 'redis',
    host: HOST,
    port: r.port,
    portEnv: 'REDIS_PORT',
    extraPorts: [],
    waitingFor: 'PING',
    timeoutMs: 20_000,
    pidFile: path.join(r.dir, 'redis.pid'),
    logFiles: [path.join(r.dir, 'redis.log'), path.join(r.dir, 'stdout.log')],

    ownsPid(pid) {
      const cmd = commandLine(pid);
      return cmd.includes('redis-server') && cmd.includes(`:${r.port}`);
    },

    async probe(): Promise<ProbeResult> {
      try {
        const reply = await redisPing(r.port);
        // "-NOAUTH ..." or "-LOADING ..." also mean "a Redis is there"; only +PONG is ready.
        return reply === '+PONG' ? { ready: true, info: { reply } } : { ready: false, error: reply, info: { reply } };
      } catch (e) {
        return { ready: false, error: (e as Error).message };
      }
    },

    canStart() {
      return commandExists(redisServer)
        ? { ok: true }
        : { ok: false, reason: `nothing answers PING on ${HOST}:${r.port} and '${redisServer}' is not installed (apt-get install redis-server, or run Redis there yourself)` };
    },

    async prepare() {
      fs.mkdirSync(r.dir, { recursive: true });
    },

    start(log) {
      const args = [
        '--bind', HOST,
        '--port', String(r.port),
        '--protected-mode', 'yes',
        '--daemonize', 'no',
        '--dir', r.dir,
        '--logfile', path.join(r.dir, 'redis.log'),
        '--appendonly', 'yes',
        '--save', '60 1',
      ];
      log.info('starting own redis-server (no Redis answered on the port)', { dir: r.dir });
      return spawnDetached(redisServer, args, { cwd: r.dir, logFile: path.join(r.dir, 'stdout.log') });
    },
  };
}

export function redisConnection(cfg: StackConfig): { url: string } {
  return { url: `redis://${HOST}:${cfg.redis.port}` };
}
