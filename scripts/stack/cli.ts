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
