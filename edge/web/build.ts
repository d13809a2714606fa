/**
 * Production build of the web client: bundles edge/web/src into edge/web/dist/app.js (minified,
 * with a source map) beside index.html and styles.css. The edge serves edge/web/dist as static
 * assets at `/` (wrangler.toml [assets]). `npm run build:web` runs it; `npm start` and the test
 * harness run it before starting the edge. Output is written to a temporary folder and each
 * file renamed into place, so an edge starting meanwhile never reads half a file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const WEB_DIST = path.join(HERE, 'dist');

export async function buildWeb(): Promise<{ dir: string; bytes: number }> {
  const tmp = fs.mkdtempSync(path.join(HERE, '.build-'));
  try {
    await build({
      entryPoints: [path.join(HERE, 'src/main.ts')],
      outfile: path.join(tmp, 'app.js'),
      bundle: true,
      format: 'esm',
      target: 'es2022',
      platform: 'browser',
      minify: true,
      sourcemap: true,
      logLevel: 'warning',
    });
    fs.copyFileSync(path.join(HERE, 'index.html'), path.join(tmp, 'index.html'));
    fs.copyFileSync(path.join(HERE, 'styles.css'), path.join(tmp, 'styles.css'));
    fs.mkdirSync(WEB_DIST, { recursive: true });
    let bytes = 0;
    for (const f of fs.readdirSync(tmp)) {
      bytes += fs.statSync(path.join(tmp, f)).size;
      fs.renameSync(path.join(tmp, f), path.join(WEB_DIST, f));
    }
    return { dir: WEB_DIST, bytes };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  buildWeb().then(
    (r) => console.log(JSON.stringify({ level: 'info', svc: 'build:web', msg: 'built', dir: path.relative(process.cwd(), r.dir), bytes: r.bytes, ms: Date.now() - t0 })),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
