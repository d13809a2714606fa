import type { Status } from '@switchboard/protocol/client';
import type { ChatModel } from './model.ts';

export interface Actions {
  open(conv: string): void;
  older(conv: string): void;
  send(conv: string, body: string): void;
  create(members: string[], title: string): Promise<void>;
  signOut(): void;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
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

  constructor(private readonly model: ChatModel, private readonly actions: Actions) {
    $('signout').onclick = () => actions.signOut();
    $('back').onclick = () => {
      $('app').classList.remove('show-chat');
      sessionStorage.removeItem('switchboard.open');
      this.list.querySelector<HTMLButtonElement>(`[data-conv="${this.openConv}"]`)?.focus();
    };
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
      $('new-error').textContent = '';
      try {
        await actions.create(members, title);
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
  }

  private renderList(): void {
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.conv;
    const items = this.model.ordered().map((c) => {
      const unread = this.openConv === c.id && document.visibilityState === 'visible' ? 0 : this.model.unread(c.id);
      const queued = this.model.pendingIn(c.id).at(-1);
      const preview = queued
        ? `You: ${queued.body} (${queued.state === 'pending' ? 'sending…' : 'not sent'})`
        : c.lastMsg
          ? `${c.lastMsg.from === this.model.me ? 'You' : c.lastMsg.from}: ${c.lastMsg.body}`
          : 'No messages yet';
      const button = el('button', { type: 'button', className: 'conv' }, el('span', { className: 'name', textContent: this.model.name(c) }), el('span', { className: 'preview', textContent: preview }));
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
    $<HTMLFormElement>('composer').hidden = !conv;
    if (!conv) return;
    $('chat-title').textContent = this.model.name(conv);
    const h = this.model.history.get(conv.id);
    $('older').hidden = !h?.more;
    const s = this.scroller;
    const fromBottom = s.scrollHeight - s.scrollTop - s.clientHeight;
    const group = !conv.direct;
    const rows = this.model.messages(conv.id).map((m) => {
      const mine = m.from === this.model.me;
      const li = el('li', { className: mine ? 'msg mine' : 'msg' });
      if (!mine && group) li.append(el('div', { className: 'from', textContent: m.from }));
      li.append(el('div', { className: 'text', textContent: m.body }), el('div', { className: 'meta', textContent: `${time(m.ts)}${mine ? ' · sent' : ''}` }));
      li.dataset.seq = String(m.seq);
      li.dataset.cmid = m.cmid;
      li.dataset.state = 'sent';
      return li;
    });
    for (const p of this.model.pendingIn(conv.id)) {
      const li = el('li', { className: 'msg mine' }, el('div', { className: 'text', textContent: p.body }), el('div', { className: 'meta', textContent: p.state === 'pending' ? 'sending…' : 'not sent' }));
      li.dataset.cmid = p.cmid;
      li.dataset.state = p.state;
      rows.push(li);
    }
    this.messages.replaceChildren(...rows);
    // Stay at the bottom when there already; keep the reader's place when older messages arrive above.
    if (keepBottom || fromBottom < 60) s.scrollTop = s.scrollHeight;
    else s.scrollTop = s.scrollHeight - s.clientHeight - fromBottom;
  }
}
