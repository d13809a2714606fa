import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface DevSecrets {
  authSecret: string;
  internalSecret: string;
}

/** Development secrets, generated once per data folder and kept there (never committed). */
export function devSecrets(dataDir: string): DevSecrets {
  const file = path.join(dataDir, 'secrets.json');
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as DevSecrets;
    if (s.authSecret?.length >= 16 && s.internalSecret?.length >= 16) return s;
  } catch {}
  const s: DevSecrets = { authSecret: crypto.randomBytes(32).toString('base64url'), internalSecret: crypto.randomBytes(32).toString('base64url') };
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(s, null, 2), { mode: 0o600 });
  return s;
}
