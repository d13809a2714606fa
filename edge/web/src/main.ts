import {
  HttpError,
  IndexedDBStore,
  MemoryStore,
  SwitchboardClient,
  createConversation,
  devToken,
  type ClientStore,
  type Status,
} from '@switchboard/protocol/client';
import { RECEIPTS, type Msg, type MsgsFrame } from '@switchboard/protocol';
import { conversationMembers, listConversations } from './api.ts';
import { WebE2e, withoutText } from './e2e.ts';
import { ChatModel, type PendingMsg, type ShownMsg } from './model.ts';
import { ReceiptsState } from './receipts.ts';
import { PresenceWatch, chooseWatched } from './presence.ts';
import { clearSession, holdDevice, loadReadMarks, loadSession, randomId, saveReadMarks, saveSession, type Session } from './session.ts';
import { TypingBook, TypingThrottle } from './typing.ts';
import { ChatView } from './view.ts';
import { startNotifications } from './notifications.ts';
import { sysText } from './system-events.ts';
import { beginSignIn, clearTokens, completeSignIn, currentToken, hasTokens, signInConfig, type SignInConfig } from './oidc.ts';

const base = location.origin;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function explain(err: unknown): string {
  if (err instanceof HttpError) {
    if (err.status === 404 && err.code === 'not_found') return 'Dev sign-in is off on this server.';
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/** A standing line about end-to-end encryption on this device (empty: nothing to say). */
function e2eStatus(text: string): void {
  const el = $('e2e-status');
  el.textContent = text;
  el.hidden = text === '';
}

function showSignin(signIn: SignInConfig, error = ''): void {
  $('signin').hidden = false;
  const form = $<HTMLFormElement>('signin-form');
  const input = $<HTMLInputElement>('signin-user');
  $('signin-error').textContent = error;
  const oidc = signIn.oidc;
  if (oidc) {
    // Production: the configured identity provider (oidc.ts); the name field is not needed.
    input.hidden = input.disabled = true;
    form.querySelector('label')!.hidden = true;
    form.querySelector('button')!.textContent = `Sign in with ${new URL(oidc.issuer).host}`;
    form.parentElement!.querySelector('.hint')!.textContent = 'You sign in with your account at the identity provider.';
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      try {
        await beginSignIn(oidc);
      } catch (err) {
        $('signin-error').textContent = explain(err);
      }
    };
    return;
  }
  input.focus();
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const user = input.value.trim();
    $('signin-error').textContent = '';
    const s = saveSession(user);
    try {
      await devToken(base, s.user, s.device);
    } catch (err) {
      clearSession();
      $('signin-error').textContent = explain(err);
      return;
    }
    $('signin').hidden = true;
    void startChat(s);
  };
}

async function openStore(s: Session): Promise<ClientStore> {
  try {
    return await IndexedDBStore.open(`switchboard:${s.user}:${s.device}`);
  } catch {
    return new MemoryStore();
  }
}

/** `tokenSource`: tokens from the identity provider; absent, development tokens. */
async function startChat(signedIn: Session, tokenSource?: () => Promise<string>): Promise<void> {
  // A provider's token names the device: it cannot move to another one.
  const s = tokenSource ? signedIn : await holdDevice(signedIn);
  $('app').hidden = false;
  $('me').textContent = s.user;
  const store = await openStore(s);
  const stored = await store.load();
  const model = new ChatModel(s.user, loadReadMarks(s.user));

  let token: string | null = null;
  const freshToken = async () => (token = await (tokenSource ? tokenSource() : devToken(base, s.user, s.device)));
  const httpToken = async () => token ?? (await freshToken());

  // End-to-end encryption: this device's MLS keys and groups in IndexedDB. Without it (no
  // IndexedDB) encrypted conversations show no text and new conversations are not encrypted.
  let e2e: WebE2e | null = null;
  try {
    e2e = await WebE2e.open(s, base, httpToken, (user) => keyChanged(user));
  } catch (err) {
    e2eStatus(`End-to-end encryption is unavailable in this browser (${explain(err)}): new conversations are not encrypted, and encrypted ones cannot be read here.`);
    const box = $<HTMLInputElement>('new-e2e');
    box.checked = box.defaultChecked = false;
    box.disabled = true;
  }
  const reveal = (m: Msg): Promise<ShownMsg | null> => (e2e ? e2e.reveal(m) : Promise.resolve(withoutText(m)));
  /** Per conversation, whether it is end-to-end encrypted, once known. */
  const encryption = new Map<string, boolean>();
  const learnEncryption = (conv: string, e2eOn: boolean) => {
    encryption.set(conv, e2eOn);
    if (e2eOn && !model.convs.get(conv)?.e2e) model.upsertConv({ id: conv, e2e: true });
  };

  for (const p of stored.outbox) {
    // An encrypted send is ciphertext in the outbox: its text was kept beside it.
    const shown = await reveal({ t: 'msg', conv: p.conv, seq: 0, cmid: p.cmid, from: s.user, dev: s.device, ts: p.createdAt, body: p.body });
    const text = shown?.sealed ? await e2e?.pendingText(p.cmid) : shown?.body;
    model.pending.set(p.cmid, { conv: p.conv, cmid: p.cmid, body: text ?? '', state: 'pending', ...(text == null ? { sealed: true } : {}) });
    model.upsertConv({ id: p.conv });
    if (shown?.body !== p.body) learnEncryption(p.conv, true);
  }

  const typingBook = new TypingBook(s.user);
  const throttle = new TypingThrottle();
  const presence = new PresenceWatch({ watch: (users) => client.watch(users), unwatch: (users) => client.unwatch(users) }, () => view.renderLive());
  const receipts = new ReceiptsState(s.user);
  const live = {
    presence: (u: string) => presence.state(u),
    typing: (conv: string) => typingBook.users(conv),
    msgState: (conv: string, seq: number) => receipts.state(conv, seq, model.members(conv)),
  };

  const view = new ChatView(model, live, {
    open: (conv) => openConv(conv),
    older: (conv) => void loadOlder(conv),
    send: (conv, body) => send(conv, body),
    create: (members, title, encrypted) => create(members, title, encrypted),
    signOut: () => {
      client.close();
      e2e?.close();
      clearSession();
      clearTokens();
      location.reload();
    },
    typing: (conv) => typing(conv),
    viewChanged: () => watchSoon(),
    answer: (conv, how) => void answer(conv, how),
  });

  /** Accepts, declines, or declines and blocks a message request (consent). */
  async function answer(conv: string, how: 'accept' | 'decline' | 'block'): Promise<void> {
    try {
      if (how === 'accept') await client.consent.accept(conv);
      else await client.consent.decline(conv, { block: how === 'block' });
      model.upsertConv({ id: conv, request: null });
      view.render();
      refreshListSoon();
    } catch (err) {
      view.flash(`Could not answer the request: ${explain(err)}`);
    }
  }

  // `typing` while the user types (TypingThrottle says when); a deferred one goes only if a draft is still there.
  const typingLater = new Map<string, ReturnType<typeof setTimeout>>();
  function typing(conv: string): void {
    if (client.status !== 'online' || typingLater.has(conv)) return;
    const wait = throttle.keystroke(conv);
    if (wait === 0) client.typing(conv);
    else if (wait !== null) typingLater.set(conv, setTimeout(() => (typingLater.delete(conv), view.hasDraft(conv) && typing(conv)), wait));
  }

  // Watch the people in view: the open conversation's members, then the peers of the visible
  // direct conversations (debounced: scrolling and re-renders settle first).
  let watchTimer: ReturnType<typeof setTimeout> | null = null;
  function watchSoon(): void {
    watchTimer ??= setTimeout(() => {
      watchTimer = null;
      const { open, convs } = view.inView();
      const peers = convs.flatMap((id) => {
        const c = model.convs.get(id);
        const p = c && model.peer(c);
        return p ? [p] : [];
      });
      presence.want(chooseWatched(s.user, open ? model.members(open) : [], peers));
    }, 200);
  }
  // "last seen 5 min ago" ages.
  setInterval(() => view.renderLive(), 30_000);

  const confirmed = (p: PendingMsg, sent: { seq: number; ts: number }) => {
    if (!model.pending.has(p.cmid)) return;
    const m: ShownMsg = { t: 'msg', conv: p.conv, seq: sent.seq, cmid: p.cmid, from: s.user, dev: s.device, ts: sent.ts, body: p.body, ...(p.sealed ? { sealed: true } : {}) };
    // Its text, for this device's history after a reload (the log holds ciphertext).
    if (e2e && encryption.get(p.conv) && !p.sealed) e2e.keep(m).catch((err: unknown) => view.flash(`Could not store a sent message on this device: ${explain(err)}`));
    model.addMsg(m);
    if (view.openConv === p.conv) markRead(p.conv);
    view.render();
  };

  const client = new SwitchboardClient({
    url: base,
    token: freshToken,
    store,
    // Encrypted conversations' messages are decrypted (their text kept) before they are acked.
    transform: async (m: Msg) => {
      const out = e2e ? await e2e.transform(m) : withoutText(m);
      if (e2e && (await e2e.holdsGroup(m.conv))) learnEncryption(m.conv, true);
      if (!out) {
        model.skip(m.conv, m.seq);
        view.render();
      }
      return out;
    },
    onTransformError: (m, err) => {
      model.skip(m.conv, m.seq);
      const text = `A message from ${m.from} (#${m.seq}) could not be decrypted: ${explain(err)}`;
      model.notice(m.conv, text);
      view.flash(text);
      view.render();
    },
    onMessage: (m: Msg) => {
      if (m.sys) {
        // A membership or device change: a line in the conversation, never a message or unread.
        model.skip(m.conv, m.seq);
        model.notice(m.conv, sysText(m.sys, s.user), `sys-${m.seq}`);
        if (view.openConv === m.conv) markRead(m.conv);
        view.render();
        return;
      }
      const added = model.addMsg(m);
      if (!added) return;
      if (!model.convs.get(m.conv)?.title && !listed.has(m.conv)) refreshListSoon();
      if (view.openConv === m.conv) markRead(m.conv);
      view.render();
    },
    onSent: (sent) => {
      const p = model.pending.get(sent.cmid);
      if (p) confirmed(p, sent);
    },
    onPresence: (st) => presence.update(st),
    onReceipt: (r) => {
      if (r.user === s.user) {
        // Read on another of my devices: unread counts follow.
        if (r.kind === 'read' && model.markRead(r.conv, r.seq)) {
          saveReadMarks(s.user, model.readMarks());
          view.render();
        }
      } else if (receipts.apply(r.conv, r.user, r.kind, r.seq) && view.openConv === r.conv) view.render();
    },
    onTyping: (conv, user, on) => {
      if (typingBook.set(conv, user, on)) view.renderLive();
    },
    onStatus: (st: Status, detail?: string) => {
      view.status(st, detail);
      presence.connection(st === 'online');
      if (st === 'online') {
        void publishKeys();
        void refreshList();
        if (view.openConv && !model.history.has(view.openConv)) void loadOlder(view.openConv);
        // Receipts sent while this device was away are in the positions.
        if (view.openConv) void loadRoster(view.openConv);
      }
    },
  });

  /** Keeps this device's KeyPackages published, so others can add it to encrypted conversations. */
  async function publishKeys(): Promise<void> {
    if (!e2e) return;
    try {
      await e2e.publish();
      e2eStatus('');
    } catch (err) {
      const text = `Could not publish this device's encryption keys (others cannot add it to encrypted conversations yet): ${explain(err)}`;
      e2eStatus(text);
      view.flash(text);
    }
  }

  /** A user's identity key differs from the one this device trusts: said in every conversation shared with them. */
  const keyFlashed = new Set<string>();
  function keyChanged(user: string): void {
    const who = user === s.user ? 'Your' : `${user}’s`;
    const text = `${who} security key has changed: messages and devices with the new key are not accepted on this device.`;
    for (const c of model.convs.values()) if (model.members(c.id).includes(user)) model.notice(c.id, text, `key:${user}`);
    if (!keyFlashed.has(user)) {
      keyFlashed.add(user);
      view.flash(text);
    }
    view.render();
  }

  startNotifications($<HTMLDetailsElement>('notifications'), {
    base,
    device: s.device,
    token: httpToken,
    title: (conv) => {
      const c = model.convs.get(conv);
      return c ? model.name(c) : conv;
    },
  });

  // The conversation is read when its messages are on screen: open, chat pane showing, page visible.
  // The server hears of it at most every RECEIPTS.clientMinIntervalMs per conversation.
  const readTimers = new Map<string, ReturnType<typeof setTimeout>>();
  const markRead = (conv: string) => {
    if (document.visibilityState !== 'visible' || view.showing() !== conv) return;
    if (!model.markRead(conv, model.convs.get(conv)?.last ?? 0)) return;
    saveReadMarks(s.user, model.readMarks());
    if (readTimers.has(conv)) return;
    client.read(conv, model.readSeq(conv));
    readTimers.set(
      conv,
      setTimeout(() => {
        readTimers.delete(conv);
        client.read(conv, model.readSeq(conv));
      }, RECEIPTS.clientMinIntervalMs),
    );
  };
  document.addEventListener('visibilitychange', () => {
    if (view.openConv) markRead(view.openConv);
    view.render();
  });

  const listed = new Set<string>();
  let refreshTimer: ReturnType<typeof setTimeout> | null = null;
  const refreshListSoon = () => {
    refreshTimer ??= setTimeout(() => ((refreshTimer = null), void refreshList()), 1000);
  };
  async function refreshList(): Promise<void> {
    try {
      const convs = await listConversations(base, await httpToken());
      for (const c of convs) {
        listed.add(c.id);
        // An encrypted conversation's newest message is ciphertext: its kept text, or "Encrypted message".
        const last = c.lastMsg && (await reveal(c.lastMsg));
        if (c.lastMsg && last !== c.lastMsg) learnEncryption(c.id, true);
        const lastMsg = last ? { from: last.from, body: last.body, ts: last.ts, seq: last.seq, ...(last.sealed ? { sealed: true } : {}) } : null;
        model.upsertConv({ id: c.id, title: c.title, members: c.members, count: c.memberCount, direct: c.direct, last: c.last, lastMsg, request: c.request ?? null });
        // The server's read position (this user's, from any device); the local mark never goes back.
        if (model.markRead(c.id, c.read)) saveReadMarks(s.user, model.readMarks());
      }
      view.render();
    } catch {
      // Shown again at the next connect; the live stream keeps the list current meanwhile.
    }
  }

  function openConv(conv: string): void {
    markRead(conv);
    if (!model.history.has(conv)) void loadOlder(conv);
    void loadRoster(conv);
  }

  /**
   * A conversation's members (the first page: as many as one device may watch), for a group's
   * presence dots, and their delivered/read positions for my messages' states.
   */
  async function loadRoster(conv: string): Promise<void> {
    try {
      const r = await conversationMembers(base, await httpToken(), conv, 200);
      learnEncryption(conv, r.e2e);
      receipts.load(conv, r.positions);
      if (model.convs.get(conv)?.direct) {
        if (view.openConv === conv) view.render();
        return;
      }
      model.rosters.set(conv, r.members);
      model.upsertConv({ id: conv, count: r.count });
      if (view.openConv === conv) view.renderLive();
      watchSoon();
    } catch {
      // The members the list and the messages name are watched meanwhile.
    }
  }

  /** One page of history, older than what is loaded (newest first from the server). */
  async function loadOlder(conv: string): Promise<void> {
    if (client.status !== 'online') return;
    const h = model.history.get(conv);
    if (h && !h.more) return;
    try {
      const page = (await client.request({ t: 'history', conv, limit: 50, ...(h ? { before: h.oldest } : {}) })) as MsgsFrame;
      for (const m of page.msgs) {
        // Ciphertext shows by its kept text (or sealed); commits show nothing.
        const shown = await reveal(m);
        if (shown) model.addMsg(shown);
        else model.skip(m.conv, m.seq);
      }
      const oldest = page.msgs.at(-1)?.seq ?? h?.oldest ?? 1;
      model.history.set(conv, { oldest, more: page.more });
      if (view.openConv === conv) markRead(conv);
      view.render({ keepBottom: !h });
    } catch (err) {
      view.flash(`Could not load messages: ${explain(err)}`);
    }
  }

  /** Whether `conv` is end-to-end encrypted: known here, or asked (never guessed: a wrong guess would send text in the clear). */
  async function isEncrypted(conv: string): Promise<boolean> {
    const known = encryption.get(conv) ?? (model.convs.get(conv)?.e2e || (await e2e?.holdsGroup(conv)) ? true : undefined);
    if (known !== undefined) return known;
    try {
      learnEncryption(conv, (await conversationMembers(base, await httpToken(), conv, 1)).e2e);
    } catch (err) {
      throw new Error(`could not tell whether the conversation is end-to-end encrypted (${explain(err)}); try again when online`);
    }
    return encryption.get(conv) === true;
  }

  function send(conv: string, body: string): void {
    throttle.sent(conv);
    const cmid = randomId();
    const p: PendingMsg = { conv, cmid, body, state: 'pending' };
    model.pending.set(cmid, p);
    view.render({ keepBottom: true });
    const sending = async () => {
      if (!(await isEncrypted(conv))) return client.send(conv, body, cmid);
      if (!e2e) throw new Error('this conversation is end-to-end encrypted, and encryption is unavailable in this browser');
      return e2e.send(conv, body, cmid, (c, b, id) => client.send(c, b, id));
    };
    sending().then(
      (sent) => confirmed(p, sent),
      (err: unknown) => {
        const cur = model.pending.get(cmid);
        if (cur) cur.state = 'failed';
        view.render();
        view.flash(`Not sent: ${explain(err)}`);
      },
    );
  }

  /** Starts a conversation: end-to-end encrypted unless the user unticked it. */
  async function create(members: string[], title: string, encrypted: boolean): Promise<void> {
    const direct = members.length === 1 && !title;
    let c: { id: string; members: string[]; direct?: boolean };
    if (encrypted) {
      if (!e2e) throw new Error('End-to-end encryption is unavailable in this browser.');
      const r = await e2e.create(members, title);
      c = { id: r.id, members: [...new Set([s.user, ...members])], direct: r.direct };
    } else c = await createConversation(base, await httpToken(), { members, direct, ...(title ? { title } : {}) });
    learnEncryption(c.id, encrypted);
    model.upsertConv({ id: c.id, members: c.members, direct: c.direct === true, title: title || null });
    client.follow(c.id);
    view.select(c.id);
  }

  // The browser knows before the socket does: drop it at once when the network goes, and
  // reconnect when it comes back, instead of waiting out a half-open socket.
  window.addEventListener('offline', () => client.close());
  window.addEventListener('online', () => void client.connect().catch(() => {}));
  view.render();
  // A reload comes back to the conversation that was open.
  const wasOpen = sessionStorage.getItem('switchboard.open');
  if (wasOpen) {
    model.upsertConv({ id: wasOpen });
    view.select(wasOpen);
  }
  if (navigator.onLine) {
    // Published before connecting (waiting 5 s at most): whoever starts an encrypted
    // conversation with this user next can add this device.
    await Promise.race([publishKeys(), new Promise((r) => setTimeout(r, 5000))]);
    void client.connect().catch(() => {});
  }
  else view.status('offline', 'no network');
}

/** Development sign-in, or the identity provider's (a return from it, or a tab already signed in through it). */
async function boot(): Promise<void> {
  const signIn = await signInConfig(base).catch((): SignInConfig => ({ devAuth: true, oidc: null }));
  const oidc = signIn.oidc;
  if (oidc) {
    const tokens = () => currentToken(oidc);
    try {
      const who = await completeSignIn(oidc);
      if (who) return void startChat(saveSession(who.user, who.device), tokens);
    } catch (err) {
      return showSignin(signIn, explain(err));
    }
    const session = loadSession();
    if (session && hasTokens()) return void startChat(session, tokens);
    return showSignin(signIn);
  }
  const session = loadSession();
  if (session) void startChat(session);
  else showSignin(signIn);
}

void boot();
