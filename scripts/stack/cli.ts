// npm run stack:up | stack:down | stack:status  — see stack.ts. Output: JSON lines on stdout.
import { loadConfig } from './config.ts';
import { createLogger } from './log.ts';
import { AbortedError } from './process.ts';
import { down, stackStatus, up } from './stack.ts';

const log = createLogger();

async function main(cmd: string | undefined): Promise<number> {
  const cfg = loadConfig();
  switch (cmd) {
    case 'up': {
      // Ctrl-C / SIGTERM: stop waiting, stop the engines this run started, exit 130.
      const ac = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => {
        if (ac.signal.aborted) {
          log.warn(`second ${sig}: exiting now`);
          process.exit(130);
        }
        log.warn(`${sig}: aborting stack:up, stopping engines started by this run`);
        ac.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        await up({ log, cfg, signal: ac.signal });
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
      for (const s of all) {
        log.info(`${s.engine}: ${s.state}${s.ready ? ', ready' : ', not ready'}`, { ...s, engine: s.engine });
      }
      const ok = all.every((s) => s.ready);
      log.info(ok ? 'stack is up' : 'stack is not (fully) up', { ok, stack_dir: cfg.stackDir });
      return ok ? 0 : 1;
    }
    default:
      process.stderr.write('usage: tsx scripts/stack/cli.ts up|down|status\n');
      return 2;
  }
}

main(process.argv[2]).then(
  (code) => process.exit(code),
  (e) => {
    log.error((e as Error).stack ?? String(e));
    process.exit(1);
  },
);
