import type { PushRecordedResponse, RecordedPush } from '@switchboard/protocol';

/**
 * The "Notifications" panel: what would have been pushed to the signed-in user's devices while
 * they had no socket. The development region records notifications instead of sending them to
 * APNs or FCM; this shows them (content-free: a conversation and a seq, as the real providers
 * would get), and lets this browser register itself as a push device so that, once its tab is
 * closed, messages for it show up here from another tab.
 */
export interface NotificationsOptions {
  base: string;
  device: string;
  token: () => Promise<string>;
  /** A conversation's title for display (its id when unknown). */
  title: (conv: string) => string;
  /** How often the list refreshes while the panel is open (default 3 s). */
  refreshMs?: number;
}

export function startNotifications(root: HTMLDetailsElement, opts: NotificationsOptions): () => void {
  const list = root.querySelector<HTMLOListElement>('.pushes')!;
  const status = root.querySelector<HTMLElement>('.push-status')!;
  const register = root.querySelector<HTMLButtonElement>('.push-register')!;
  let timer: ReturnType<typeof setInterval> | null = null;

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${opts.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${await opts.token()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown> & { error?: { message: string } };
    if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
    return json;
  };

  const refresh = async () => {
    try {
      const r = (await call('GET', '/v1/push/recorded')) as unknown as PushRecordedResponse;
      if (!r.enabled) {
        status.textContent = 'This server sends notifications to APNs and FCM; none are recorded here.';
        list.replaceChildren();
        return;
      }
      status.textContent = r.pushes.length ? `${r.pushes.length} recorded` : 'Nothing recorded yet: a device with push registered gets one when a message arrives while it is offline.';
      list.replaceChildren(...[...r.pushes].reverse().map((p) => item(p)));
    } catch (err) {
      status.textContent = `Notifications unavailable: ${err instanceof Error ? err.message : String(err)}`;
    }
  };

  const item = (p: RecordedPush) => {
    const li = document.createElement('li');
    const when = new Date(p.at).toLocaleTimeString();
    li.textContent = `${when} · ${p.device} (${p.provider}) · ${opts.title(p.conv)} #${p.seq}`;
    li.title = JSON.stringify(p.payload);
    return li;
  };

  register.onclick = async () => {
    register.disabled = true;
    try {
      await call('PUT', `/v1/devices/${encodeURIComponent(opts.device)}/push`, { provider: 'fcm', token: `web-dev-${opts.device}` });
      status.textContent = `${opts.device} is registered: close this tab, send it a message from another, and look here.`;
      register.textContent = 'Registered for push';
    } catch (err) {
      register.disabled = false;
      status.textContent = `Could not register: ${err instanceof Error ? err.message : String(err)}`;
    }
  };

  root.ontoggle = () => {
    if (timer) clearInterval(timer);
    timer = null;
    if (!root.open) return;
    void refresh();
    timer = setInterval(() => void refresh(), opts.refreshMs ?? 3000);
  };
  return () => timer && clearInterval(timer);
}
