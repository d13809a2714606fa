import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Test credentials made at test time in a temp dir (removed when the process exits): a P-256 test
 * CA and one server certificate it signed for every host the push fakes stand in for (localhost,
 * 127.0.0.1, api.push.apple.com, api.sandbox.push.apple.com, fcm.googleapis.com,
 * oauth2.googleapis.com), an APNs .p8 key, and FCM service accounts. Certificates come from the
 * `openssl` CLI; keys from node:crypto.
 */

export const SERVER_HOSTS = ['localhost', 'api.push.apple.com', 'api.sandbox.push.apple.com', 'fcm.googleapis.com', 'oauth2.googleapis.com'];

export interface TestPki {
  dir: string;
  /** The CA certificate (trust this: APNS_CA_FILE, FCM_CA_FILE). */
  caFile: string;
  caPem: string;
  /** The server certificate and key the fakes serve. */
  certPem: string;
  keyPem: string;
}

let made: TestPki | null = null;

/** The process's test PKI, made on first use. */
export function testPki(): TestPki {
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-push-pki-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const at = (f: string) => path.join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  fs.writeFileSync(at('ca.key'), ec(), { mode: 0o600 });
  fs.writeFileSync(at('server.key'), ec(), { mode: 0o600 });
  ssl('req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '3', '-subj', '/CN=Switchboard Push Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', 'ca.pem');
  ssl('req', '-new', '-key', 'server.key', '-subj', '/CN=localhost', '-out', 'server.csr');
  const san = [...SERVER_HOSTS.map((h) => `DNS:${h}`), 'IP:127.0.0.1'].join(',');
  fs.writeFileSync(at('server.ext'), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '3', '-sha256',
    '-extfile', 'server.ext', '-out', 'server.pem');
  made = {
    dir,
    caFile: at('ca.pem'),
    caPem: fs.readFileSync(at('ca.pem'), 'utf8'),
    certPem: fs.readFileSync(at('server.pem'), 'utf8'),
    keyPem: fs.readFileSync(at('server.key'), 'utf8'),
  };
  return made;
}

let seq = 0;
const randomId = (n: number) => crypto.randomBytes(n).toString('hex').toUpperCase().slice(0, n);

export interface ApnsTestKey {
  /** APNS_KEY_FILE: the .p8 (P-256, PKCS#8 PEM). */
  file: string;
  pem: string;
  /** What the fake verifies provider tokens with. */
  publicKey: crypto.KeyObject;
  /** APNS_KEY_ID, APNS_TEAM_ID: 10 characters each, as Apple's. */
  keyId: string;
  teamId: string;
}

/** A fresh APNs signing key, as Apple's developer site hands out. */
export function apnsKey(): ApnsTestKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const keyId = randomId(10);
  const file = path.join(testPki().dir, `AuthKey_${keyId}.p8`);
  fs.writeFileSync(file, pem, { mode: 0o600 });
  return { file, pem, publicKey, keyId, teamId: randomId(10) };
}

export interface TestServiceAccount {
  /** FCM_SERVICE_ACCOUNT_FILE. */
  file: string;
  projectId: string;
  clientEmail: string;
  /** What the fake verifies OAuth assertions with. */
  publicKey: crypto.KeyObject;
}

/** A fresh service account JSON (its own RSA key), as the Firebase console hands out. */
export function serviceAccount(projectId: string): TestServiceAccount {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const clientEmail = `firebase-adminsdk-${++seq}@${projectId}.iam.gserviceaccount.com`;
  const json = {
    type: 'service_account',
    project_id: projectId,
    private_key_id: crypto.randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: clientEmail,
    client_id: String(100000000000 + seq),
    token_uri: 'https://oauth2.googleapis.com/token',
  };
  const file = path.join(testPki().dir, `sa-${projectId}-${seq}.json`);
  fs.writeFileSync(file, JSON.stringify(json, null, 2), { mode: 0o600 });
  return { file, projectId, clientEmail, publicKey };
}
