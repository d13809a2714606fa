import type { Hono } from 'hono';
import { LIMITS, ProtocolError, PushRecordedRequest, PushRegisterRequest, PushUnregisterRequest, parseJsonBody, type PushRecordedResponse } from '@switchboard/protocol';
import type { Storage } from '../storage/storage.ts';
import type { PushGate } from './gate.ts';
import type { RecordingProvider } from './provider-recording.ts';
import type { RegistrationsCache } from './registrations-cache.ts';

type Env = { Variables: { rawBody: string } };

export interface PushApiDeps {
  storage: Storage;
  cache: RegistrationsCache;
  gate: PushGate;
  /** The recording stand-in of this process, if it runs one (development). */
  recording: RecordingProvider | null;
}

function body(c: { get(key: 'rawBody'): string }): string {
  const text = c.get('rawBody');
  if (text.length > LIMITS.maxInternalBodyBytes) throw new ProtocolError('too_large');
  return text;
}

/**
 * The signed push API the edge calls (behind the app's internal auth): a device's registration
 * (`register` moves a token held by another device here, see PushRegistrations), its removal, and
 * what the recording stand-in would have sent to a user's devices (development).
 */
export function registerPushApi(app: Hono<Env>, deps: PushApiDeps): void {
  app.post('/internal/push/register', async (c) => {
    const req = parseJsonBody(body(c), PushRegisterRequest);
    const { provider, token, env, topic } = req.registration;
    const at = Date.now();
    await deps.storage.registerPush({ user: req.user, device: req.device, service: provider, token, ...(env ? { env } : {}), ...(topic ? { topic } : {}) }, at);
    deps.cache.forget(req.user);
    // A new registration starts with no wake outstanding.
    await deps.gate.release(req.user, req.device);
    return c.json({ registeredAt: at });
  });

  app.post('/internal/push/unregister', async (c) => {
    const req = parseJsonBody(body(c), PushUnregisterRequest);
    await deps.storage.unregisterPush(req.user, req.device);
    deps.cache.forget(req.user);
    return c.json({ unregistered: true });
  });

  /** The device's registration as the device may see it (the token itself is not echoed). */
  app.post('/internal/push/registration', async (c) => {
    const req = parseJsonBody(body(c), PushUnregisterRequest);
    const r = await deps.storage.pushRegistration(req.user, req.device);
    return c.json({ registration: r ? { provider: r.service, ...(r.env ? { env: r.env } : {}), ...(r.topic ? { topic: r.topic } : {}), registeredAt: r.registeredAt } : null });
  });

  app.post('/internal/push/recorded', async (c) => {
    const req = parseJsonBody(body(c), PushRecordedRequest);
    const rec = deps.recording;
    const out: PushRecordedResponse = rec
      ? {
          enabled: true,
          pushes: rec.recorded(req.user).map((n) => ({
            device: n.reg.device,
            provider: n.reg.service,
            conv: n.msg.conv,
            seq: n.msg.seq,
            at: n.at,
            payload: n.payload.service === 'apns' ? { headers: n.payload.request.headers, body: JSON.parse(n.payload.request.body) as unknown } : n.payload.message,
          })),
        }
      : { enabled: false, pushes: [] };
    return c.json(out);
  });
}
