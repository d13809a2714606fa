import type { Status } from '@switchboard/protocol/client';
import type { ChatModel, ConvInfo } from './model.ts';
import { presenceText } from './presence.ts';
import { dot, peopleItems, type LiveState } from './presence-view.ts';
import { typingText } from './typing.ts';

export interface Actions {
  open(conv: string): void;
  older(conv: string): void;
  send(conv: string, body: string): void;
  /** `encrypted`: end-to-end encrypted (the form's default). */
  create(members: string[], title: string, encrypted: boolean): Promise<void>;
  signOut(): void;
  /** The user typed in the composer of `conv`. */
  typing(conv: string): void;
  /** Who is in view may have changed (render, scroll, resize, navigation). */
  viewChanged(): void;
  /** Answer the open conversation's message request. */
  answer(conv: string, how: 'accept' | 'decline' | 'block'): void;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

/** What shows in place of a message whose text this device does not have. */
const SEALED = 'Encrypted message';

/** A padlock (drawn: emoji fonts are not everywhere), as in index.html's header. */
const LOCK_SVG = '<svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true"><path fill="currentColor" d="M4 7V5a4 4 0 1 1 8 0v2h1v8H3V7h1zm2 0h4V5a2 2 0 1 0-4 0v2z"/></svg>';

/** The lock before an encrypted conversation's name. */
function lock(): HTMLElement {
  const l = el('span', { className: 'lock', innerHTML: LOCK_SVG, title: 'End-to-end encrypted' });
  l.setAttribute('aria-label', 'end-to-end encrypted');
  l.setAttribute('role', 'img');
  return l;
}

/** A message's text, or the sealed line for one this device cannot read. */
function msgText(body: string, sealed?: boolean): HTMLElement {
  return sealed ? el('div', { className: 'text sealed', textContent: `${SEALED} (not readable on this device)` }) : el('div', { className: 'text', textContent: body });
}

const time = (ts: number) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

/** The DOM of the signed-in app: renders the model, turns user input into actions. */
export class ChatView {
  openConv: string | null = null;
  private readonly list = $<HTMLUListElement>('convs');
  private readonly messages = $<HTMLOListElement>('messages');
  private readonly scroller = $<HTMLDivElement>('scroller');
  private readonly banner = $<HTMLDivElement>('banner');
  private flashTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly model: ChatModel, private readonly live: LiveState, private readonly actions: Actions) {
    $('signout').onclick = () => actions.signOut();
    $('back').onclick = () => {
      $('app').classList.remove('show-chat');
      sessionStorage.removeItem('switchboard.open');
      this.list.querySelector<HTMLButtonElement>(`[data-conv="${this.openConv}"]`)?.focus();
      actions.viewChanged();
    };
    this.list.addEventListener('scroll', () => actions.viewChanged(), { passive: true });
    window.addEventListener('resize', () => actions.viewChanged());
    $('older').onclick = () => this.openConv && actions.older(this.openConv);
    this.scroller.addEventListener('scroll', () => {
      if (this.scroller.scrollTop < 40 && this.openConv && this.model.history.get(this.openConv)?.more) actions.older(this.openConv);
    });
    const body = $<HTMLTextAreaElement>('body');
    $<HTMLFormElement>('composer').onsubmit = (ev) => {
      ev.preventDefault();
      const text = body.value.trim();
      if (!text || !this.openConv) return;
      body.value = '';
      actions.send(this.openConv, text);
    };
    body.addEventListener('input', () => {
      if (this.openConv && body.value.trim()) actions.typing(this.openConv);
    });
    body.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $<HTMLFormElement>('composer').requestSubmit();
      }
    });
    const form = $<HTMLFormElement>('new-conv');
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const members = $<HTMLInputElement>('new-members').value.split(/[\s,]+/).filter(Boolean);
      const title = $<HTMLInputElement>('new-title').value.trim();
      const box = $<HTMLInputElement>('new-e2e');
      $('new-error').textContent = '';
      try {
        await actions.create(members, title, box.checked && !box.disabled);
        form.reset();
      } catch (err) {
        $('new-error').textContent = err instanceof Error ? err.message : String(err);
      }
    };
  }

  select(conv: string): void {
    this.openConv = conv;
    sessionStorage.setItem('switchboard.open', conv);
    $('app').classList.add('show-chat');
    this.actions.open(conv);
    this.render({ keepBottom: true });
    $<HTMLTextAreaElement>('body').focus();
  }

  /** The composer of `conv` holds text the user has not sent. */
  hasDraft(conv: string): boolean {
    return this.openConv === conv && $<HTMLTextAreaElement>('body').value.trim() !== '';
  }

  status(s: Status, detail?: string): void {
    this.banner.dataset.status = s;
    this.banner.hidden = s === 'online';
    this.banner.textContent =
      s === 'connecting' ? 'Connecting…' : s === 'offline' ? `Offline${detail?.startsWith('closed 400') ? ' (sign in again)' : ''} — messages you send will go out when the connection returns.` : '';
  }

  /** A short notice in the banner (errors that belong to no field). */
  flash(text: string): void {
    const prev = { hidden: this.banner.hidden, text: this.banner.textContent };
    this.banner.hidden = false;
    this.banner.textContent = text;
    if (this.flashTimer) clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => {
      this.banner.hidden = this.banner.dataset.status === 'online' ? true : prev.hidden;
      if (this.banner.dataset.status !== 'online') this.banner.textContent = prev.text;
    }, 4000);
  }

  render(opts: { keepBottom?: boolean } = {}): void {
    this.renderList();
    this.renderChat(opts.keepBottom ?? false);
    this.actions.viewChanged();
  }

  /** Presence and typing changed (or time passed for "last seen"): everything but the messages. */
  renderLive(): void {
    this.renderList();
    const conv = this.openConv ? this.model.convs.get(this.openConv) : undefined;
    if (conv) this.renderHeader(conv);
  }

  /** The open conversation while its chat pane is on screen (not on a phone showing the list). */
  showing(): string | null {
    return this.openConv && $('chat').getClientRects().length > 0 ? this.openConv : null;
  }

  /**
   * What is on screen: the open conversation (null when the chat pane is hidden, as on a phone
   * showing the list) and the conversations whose rows are visible in the list.
   */
  inView(): { open: string | null; convs: string[] } {
    const open = this.showing();
    const box = this.list.getBoundingClientRect();
    const bottom = Math.min(box.bottom, window.innerHeight);
    const convs: string[] = [];
    if (box.height > 0) {
      for (const row of this.list.querySelectorAll<HTMLElement>('.conv')) {
        const r = row.getBoundingClientRect();
        if (r.bottom > box.top && r.top < bottom && row.dataset.conv) convs.push(row.dataset.conv);
      }
    }
    return { open, convs };
  }

  private renderList(): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.conv;
    const now = Date.now();
    const showing = this.showing();
    const items = this.model.ordered().map((c) => {
      const unread = showing === c.id && document.visibilityState === 'visible' ? 0 : this.model.unread(c.id);
      const queued = this.model.pendingIn(c.id).at(-1);
      // A text this device does not have shows as "Encrypted message", never as ciphertext.
      const preview = queued
        ? `You: ${queued.sealed ? SEALED : queued.body} (${queued.state === 'pending' ? 'sending…' : 'not sent'})`
        : c.lastMsg
          ? `${c.lastMsg.from === this.model.me ? 'You' : c.lastMsg.from}: ${c.lastMsg.sealed ? SEALED : c.lastMsg.body}`
          : 'No messages yet';
      const typing = typingText(this.live.typing(c.id));
      const name = el('span', { className: 'name' });
      const peer = this.model.peer(c);
      const d = peer ? dot(this.live.presence(peer), now) : null;
      if (d) name.append(d);
      if (c.e2e) name.append(lock());
      name.append(this.model.name(c));
      const line = el('span', { className: typing ? 'preview typing' : 'preview', textContent: typing || (c.request ? `Request from ${c.request.by} · ${preview}` : preview) });
      const button = el('button', { type: 'button', className: 'conv' }, name, line);
      button.dataset.conv = c.id;
      if (this.openConv === c.id) button.setAttribute('aria-current', 'true');
      if (unread > 0) {
        const badge = el('span', { className: 'unread', textContent: String(unread) });
        badge.setAttribute('aria-label', `${unread} unread`);
        button.append(badge);
      }
      button.onclick = () => this.select(c.id);
      return el('li', {}, button);
    });
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector<HTMLButtonElement>(`[data-conv="${focused}"]`)?.focus();
  }

  private renderChat(keepBottom: boolean): void {
    const conv = this.openConv ? this.model.convs.get(this.openConv) : undefined;
    // A message request: read it, then accept, decline or block before replying.
    const bar = $<HTMLDivElement>('request-bar');
    bar.hidden = !conv?.request;
    $<HTMLFormElement>('composer').hidden = !conv || !!conv.request;
    if (conv?.request) {
      $('request-text').textContent = `${conv.request.by} wants to message you. They will not see your presence, typing or read receipts until you accept.`;
      const id = conv.id;
      $('req-accept').onclick = () => this.actions.answer(id, 'accept');
      $('req-decline').onclick = () => this.actions.answer(id, 'decline');
      $('req-block').onclick = () => this.actions.answer(id, 'block');
    }
    if (!conv) return;
    this.renderHeader(conv);
    const h = this.model.history.get(conv.id);
    $('older').hidden = !h?.more;
    const s = this.scroller;
    const fromBottom = s.scrollHeight - s.scrollTop - s.clientHeight;
    const group = !conv.direct;
    const rows = this.model.messages(conv.id).map((m) => {
      const mine = m.from === this.model.me;
      const li = el('li', { className: mine ? 'msg mine' : 'msg' });
      if (!mine && group) li.append(el('div', { className: 'from', textContent: m.from }));
      // Mine: sent → delivered (every other member has it) → read (every other member read it).
      const state = mine ? this.live.msgState(conv.id, m.seq) : 'sent';
      const meta = el('div', { className: 'meta', textContent: `${time(m.ts)}${mine ? ` · ${state}` : ''}` });
      if (mine) {
        const ticks = el('span', { className: `ticks ${state}`, textContent: state === 'sent' ? '✓' : '✓✓' });
        ticks.setAttribute('aria-hidden', 'true');
        meta.append(ticks);
      }
      li.append(msgText(m.body, m.sealed), meta);
      li.dataset.seq = String(m.seq);
      li.dataset.cmid = m.cmid;
      li.dataset.state = state;
      return { seq: m.seq, li };
    });
    // Notices (a key change, a message that could not be decrypted) after the message they followed.
    for (const n of this.model.notices(conv.id)) {
      const li = el('li', { className: 'notice', textContent: n.text });
      li.setAttribute('role', 'note');
      rows.push({ seq: n.after + 0.5, li });
    }
    rows.sort((a, b) => a.seq - b.seq);
    const items = rows.map((r) => r.li);
    for (const p of this.model.pendingIn(conv.id)) {
      const li = el('li', { className: 'msg mine' }, msgText(p.body, p.sealed), el('div', { className: 'meta', textContent: p.state === 'pending' ? 'sending…' : 'not sent' }));
      li.dataset.cmid = p.cmid;
      li.dataset.state = p.state;
      items.push(li);
    }
    this.messages.replaceChildren(...items);
    // Stay at the bottom when there already; keep the reader's place when older messages arrive above.
    if (keepBottom || fromBottom < 60) s.scrollTop = s.scrollHeight;
    else s.scrollTop = s.scrollHeight - s.clientHeight - fromBottom;
  }

  /** Title; "online" / "last seen …" for a direct chat, members with their dots for a group; who is typing. */
  private renderHeader(conv: ConvInfo): void {
    const now = Date.now();
    $('chat-title').textContent = this.model.name(conv);
    $('chat-e2e').hidden = !conv.e2e;
    const sub = $('chat-sub');
    const people = $<HTMLUListElement>('people');
    const peer = this.model.peer(conv);
    if (peer) {
      const st = this.live.presence(peer);
      sub.dataset.presence = st?.status ?? 'unknown';
      sub.textContent = presenceText(st, now);
      people.hidden = true;
    } else {
      const others = this.model.members(conv.id).filter((m) => m !== this.model.me);
      const online = others.filter((u) => this.live.presence(u)?.status === 'online').length;
      delete sub.dataset.presence;
      sub.textContent = conv.direct ? '' : `${conv.count || others.length + 1} members${online ? `, ${online} online` : ''}`;
      people.hidden = others.length === 0;
      people.replaceChildren(...peopleItems(others, this.live, now));
    }
    const typing = $('typing');
    const text = typingText(this.live.typing(conv.id));
    if (typing.textContent !== text) typing.textContent = text;
  }
}
