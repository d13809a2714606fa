import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { MlsStore } from './store.ts';

/**
 * MlsStore in a directory (Node): one file per key, written to a temporary file, synced, then
 * renamed over the old one and the directory synced, so a crash leaves the old or the new value,
 * never a torn one. Keys are [A-Za-z0-9._/-]; '/' becomes a subdirectory-free '~'.
 */
export class FileMlsStore implements MlsStore {
  constructor(private readonly dir: string) {}

  private file(key: string): string {
    if (!/^[A-Za-z0-9._/-]{1,200}$/.test(key)) throw new Error(`MLS store key: ${JSON.stringify(key)}`);
    return path.join(this.dir, key.replace(/\//g, '~'));
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.file(key)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const target = this.file(key);
    const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(value);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    const d = await open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.file(key), { force: true });
  }

  async keys(prefix: string): Promise<string[]> {
    try {
      return (await readdir(this.dir))
        .filter((f) => !f.includes('.tmp-'))
        .map((f) => f.replace(/~/g, '/'))
        .filter((k) => k.startsWith(prefix));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }
}
