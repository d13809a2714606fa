// npm run stack:up [-- --regions 2] [--redis-cluster] | stack:down | stack:status  — see stack.ts.
// Output: JSON lines on stdout.
import { envRedisCluster, envRegions, loadConfig, type Regions } from './config.ts';
import { createLogger } from './log.ts';
import { AbortedError } from './process.ts';
import { down, stackStatus, summarize, up } from './stack.ts';

const log = createLogger();
const USAGE = 'usage: tsx scripts/stack/cli.ts up [--regions 1|2] [--redis-cluster] | down | status\n';

/** `--regions 2` / `--regions=2` (default STACK_REGIONS or 1), `--redis-cluster` (default STACK_REDIS_CLUSTER). */
function parseUpArgs(args: string[]): { regions: Regions; redisCluster: boolean } {
  let regions = envRegions();
  let redisCluster = envRedisCluster();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--redis-cluster') redisCluster = true;
    else if (a === '--regions' || a.startsWith('--regions=')) {
      const v = a === '--regions' ? args[++i] : a.slice('--regions='.length);
      if (v !== '1' && v !== '2') throw new UsageError(`--regions must be 1 or 2 (got ${v ?? 'nothing'})`);
      regions = Number(v) as Regions;
    } else throw new UsageError(`unknown option ${a}`);
  }
  return { regions, redisCluster };
}

class UsageError extends Error {}

async function main(cmd: string | undefined, args: string[]): Promise<number> {
  const cfg = loadConfig();
  switch (cmd) {
    case 'up': {
      // Ctrl-C / SIGTERM: stop waiting, stop the engines this run started, exit 130.
      // A terminal Ctrl-C reaches us up to three times (from the tty, and relayed by npm and tsx):
      // repeats within 2 s count as one; a later one forces an immediate exit.
      const ac = new AbortController();
      let firstSignalAt = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        if (ac.signal.aborted) {
          if (Date.now() - firstSignalAt < 2000) return;
          log.warn(`second ${sig}: exiting now; engines may be left running (run stack:down)`);
          process.exit(130);
        }
        firstSignalAt = Date.now();
        log.warn(`${sig}: aborting stack:up, stopping engines started by this run`);
        ac.abort();
      };
      let sel;
      try {
        sel = parseUpArgs(args);
      } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        process.stderr.write(`${e.message}\n${USAGE}`);
        return 2;
      }
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        await up({ log, cfg, signal: ac.signal, ...sel });
        return 0;
      } catch (e) {
        if (e instanceof AbortedError) {
          log.warn('stack:up interrupted');
          return 130;
        }
        log.error((e as Error).message);
        return 1;
      }
    }
    case 'down': {
      const t0 = Date.now();
      await down({ log, cfg });
      log.info('stack is down', { total_ms: Date.now() - t0 });
      return 0;
    }
    case 'status': {
      const all = await stackStatus(cfg);
      const { ok, groups } = summarize(all);
      // Region 1 always; region 2 and the Redis Cluster when any of their engines is up.
      for (const s of all) {
        if (s.group !== 'region1' && !groups[s.group].up) continue;
        log.info(`${s.engine}: ${s.state}${s.ready ? ', ready' : ', not ready'}`, { ...s, engine: s.engine });
      }
      const notUp = (['region2', 'redis-cluster'] as const).filter((g) => !groups[g].up);
      if (notUp.length) log.info(`not up: ${notUp.join(', ')}`, { hint: 'npm run stack:up -- --regions 2 --redis-cluster' });
      if (groups['redis-cluster'].up) log.info(`redis-cluster: ${groups['redis-cluster'].ready ? 'cluster_state ok on every node' : 'not ok'}`, { ready: groups['redis-cluster'].ready });
      log.info(ok ? 'stack is up' : 'stack is not (fully) up', { ok, region2: groups.region2.up ? groups.region2.ready : undefined, redis_cluster: groups['redis-cluster'].up ? groups['redis-cluster'].ready : undefined, stack_dir: cfg.stackDir });
      return ok ? 0 : 1;
    }
    default:
      process.stderr.write(USAGE);
      return 2;
  }
}

main(process.argv[2], process.argv.slice(3)).then(
  (code) => process.exit(code),
  (e) => {
    log.error((e as Error).stack ?? String(e));
    process.exit(1);
  },
);
