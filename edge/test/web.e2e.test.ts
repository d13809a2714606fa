/**
 * The web client in a real browser (Debian's Chromium through playwright-core) against the whole
 * system (region + edge in workerd as real processes). Screenshots go to .artifacts/web/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { SwitchboardClient, createConversation, devToken, type SocketLike } from '@switchboard/protocol/client';
import { SHOTS, WAIT, browserSkip, launchBrowser, sendText, signIn as signInAs } from './browser.ts';
import { startSystem, type System } from './system.ts';

describe('web client in Chromium', { timeout: 600_000, skip: browserSkip }, () => {
  let sys: System;
  let browser: Browser;

  before(async () => {
    sys = await startSystem('embedded');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await sys?.stop();
  });

  const signIn = (user: string, viewport?: { width: number; height: number }) => signInAs(browser, sys.edgeUrl, user, viewport ? { viewport } : {});

  async function startDirect(page: Page, other: string): Promise<void> {
    await page.getByLabel('New conversation with').fill(other);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('#chat-title', { hasText: other }).waitFor();
  }

  const send = sendText;

  /** Texts of the open conversation's messages, top to bottom. */
  const texts = (page: Page) => page.locator('#messages li.msg .text').allTextContents();
  /** Seqs shown, top to bottom (pending messages have none). */
  const seqs = async (page: Page) => (await page.locator('#messages li.msg[data-seq]').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.seq))));

  /** Waits until my message `text` in the open conversation shows `state`. */
  async function stateOf(page: Page, text: string, state: 'sent' | 'delivered' | 'read'): Promise<void> {
    await page.locator(`#messages li.msg.mine[data-state="${state}"]`, { hasText: text }).waitFor();
  }

  /** Waits until the open conversation shows exactly `expected`, every one sequenced. */
  async function shows(page: Page, expected: string[]): Promise<void> {
    await page.waitForFunction(
      (want) => {
        const items = [...document.querySelectorAll<HTMLElement>('#messages li.msg')];
        const sequenced = ['sent', 'delivered', 'read'];
        return items.length === want.length && items.every((li, i) => sequenced.includes(li.dataset.state ?? '') && li.querySelector('.text')?.textContent === want[i]);
      },
      expected,
      { timeout: WAIT },
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\nshown: ${JSON.stringify(await texts(page))}\nwanted: ${JSON.stringify(expected)}`);
    });
    const s = await seqs(page);
    assert.deepEqual(s, [...s].sort((a, b) => a - b), 'in seq order');
    assert.equal(new Set(s).size, s.length, 'each seq once');
  }

  it('two users chat; one goes offline, misses a burst, comes back and sees it exactly once and in order', async () => {
    const a = await signIn('alice');
    const b = await signIn('bob', { width: 390, height: 760 });
    await startDirect(a.page, 'bob');
    await send(a.page, 'hello bob');
    await shows(a.page, ['hello bob']);

    // Bob's list learns the conversation from the live message, with an unread count.
    const conv = b.page.locator('#convs .conv', { hasText: 'alice' });
    await conv.locator('.unread', { hasText: '1' }).waitFor();
    await conv.locator('.preview', { hasText: 'hello bob' }).waitFor();
    await b.page.screenshot({ path: path.join(SHOTS, 'phone-list-unread.png') });
    await conv.click();
    await shows(b.page, ['hello bob']);
    await send(b.page, 'hi alice');
    await shows(a.page, ['hello bob', 'hi alice']);
    await shows(b.page, ['hello bob', 'hi alice']);
    // Bob had the conversation open when it arrived: Alice sees it read.
    await stateOf(a.page, 'hello bob', 'read');
    await a.page.screenshot({ path: path.join(SHOTS, 'desktop-chat.png') });

    // Bob goes back to his list: a new message reaches his phone (delivered) but is not read.
    await b.page.getByRole('button', { name: 'Back' }).click();
    await send(a.page, 'are you there?');
    await stateOf(a.page, 'are you there?', 'delivered');
    await b.page.locator('#convs .conv', { hasText: 'alice' }).locator('.unread', { hasText: '1' }).waitFor();
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await a.page.locator('#messages li.msg.mine', { hasText: 'are you there?' }).getAttribute('data-state'), 'delivered', 'not read while Bob looks at his list');
    await a.page.screenshot({ path: path.join(SHOTS, 'desktop-receipt-delivered.png') });
    await b.page.locator('#convs .conv', { hasText: 'alice' }).click();
    await stateOf(a.page, 'are you there?', 'read');
    await a.page.screenshot({ path: path.join(SHOTS, 'desktop-receipt-read.png') });

    await b.ctx.setOffline(true);
    await b.page.locator('#banner[data-status="offline"]').waitFor();
    const burst = Array.from({ length: 6 }, (_, i) => `burst ${i + 1}`);
    for (const text of burst) await send(a.page, text);
    await shows(a.page, ['hello bob', 'hi alice', 'are you there?', ...burst]);
    // Bob is offline: sequenced and stored, but on none of his devices.
    for (const text of burst) assert.equal(await a.page.locator('#messages li.msg.mine', { hasText: text }).getAttribute('data-state'), 'sent');
    // Everything is sequenced and stored; Bob, offline, has none of it.
    assert.deepEqual(await texts(b.page), ['hello bob', 'hi alice', 'are you there?']);
    await b.page.screenshot({ path: path.join(SHOTS, 'phone-offline-banner.png') });

    await b.ctx.setOffline(false);
    await shows(b.page, ['hello bob', 'hi alice', 'are you there?', ...burst]);
    // Back online with the conversation open: he has read the burst, and Alice sees it.
    await stateOf(a.page, 'burst 6', 'read');
    await b.page.locator('#banner[data-status="online"]').waitFor({ state: 'attached' });
    await b.page.screenshot({ path: path.join(SHOTS, 'phone-back-online.png') });
  });

  it('a reload in the middle of sending loses nothing and duplicates nothing', async () => {
    const c = await signIn('carol');
    const d = await signIn('dave');
    // Until told otherwise, Carol's socket is proxied: `sent` replies never reach the page and,
    // once `dropSends` is set, her `send` frames never reach the edge either.
    let intercept = true;
    let dropSends = false;
    await c.page.routeWebSocket(/\/v1\/connect/, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((m) => {
        if (intercept && dropSends && JSON.parse(String(m)).t === 'send') return;
        server.send(m);
      });
      server.onMessage((m) => {
        if (intercept && JSON.parse(String(m)).t === 'sent') return;
        ws.send(m);
      });
    });
    await c.page.reload();
    await c.page.locator('#banner[data-status="online"]').waitFor({ state: 'attached' });
    await startDirect(c.page, 'dave');

    const reached = ['reached 1', 'reached 2', 'reached 3'];
    const unsent = ['unsent 4', 'unsent 5'];
    for (const text of reached) await send(c.page, text);
    // Sequenced at the edge (Dave gets them) while Carol never heard back.
    await d.page.locator('#convs .conv', { hasText: 'carol' }).click();
    await shows(d.page, reached);
    dropSends = true;
    for (const text of unsent) await send(c.page, text);
    await c.page.waitForFunction(() => document.querySelectorAll('#messages li.msg[data-state="pending"]').length === 5);
    await c.page.screenshot({ path: path.join(SHOTS, 'desktop-pending-before-reload.png') });

    intercept = false;
    await c.page.reload();
    const all = [...reached, ...unsent];
    await shows(c.page, all);
    await shows(d.page, all);
    await c.page.screenshot({ path: path.join(SHOTS, 'desktop-after-reload.png') });
  });

  it('lists a group by title with its unread count (GET /v1/conversations) and scrolls back through its history', async () => {
    const url = sys.edgeUrl;
    const erin = new SwitchboardClient({ url, token: () => devToken(url, 'erin', 'cli'), socket: (u) => new WebSocket(u) as unknown as SocketLike });
    await erin.connect();
    const group = await createConversation(url, await devToken(url, 'erin', 'cli'), { members: ['frank', 'gina'], title: 'Team' });
    const bodies = Array.from({ length: 70 }, (_, i) => `note ${i + 1}`);
    for (const b of bodies) await erin.send(group.id, b);
    erin.close();

    const frank = await devToken(url, 'frank', 'cli');
    const list = async (q = '', tok: string | null = frank) => {
      const res = await fetch(`${url}/v1/conversations${q}`, { headers: tok ? { authorization: `Bearer ${tok}` } : {} });
      return { status: res.status, body: (await res.json()) as { convs?: { id: string; title: string | null; members: string[]; last: number; lastMsg: { body: string } | null }[]; error?: { code: string } } };
    };
    // The region has the group once the ConversationDO has drained to it.
    for (let i = 0; ; i++) {
      const r = await list();
      const g = r.body.convs?.find((c) => c.id === group.id);
      if (g && g.last === 70) {
        assert.equal(g.title, 'Team');
        assert.deepEqual(g.members, ['erin', 'frank', 'gina']);
        assert.equal(g.lastMsg?.body, 'note 70');
        break;
      }
      assert.ok(i < 600, 'the group reaches the region');
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await list('', null)).status, 401);
    assert.equal((await list('?limit=0')).body.error?.code, 'invalid_frame');
    assert.equal((await list('?after=%2F..')).body.error?.code, 'invalid_frame');
    assert.deepEqual((await list('', await devToken(url, 'stranger', 'cli'))).body.convs, []);

    const f = await signIn('frank');
    const item = f.page.locator('#convs .conv', { hasText: 'Team' });
    await item.locator('.unread', { hasText: '70' }).waitFor();
    await item.focus();
    await f.page.keyboard.press('Enter');
    // A new device catches up on everything it has not acked (resume + sync) ...
    await shows(f.page, bodies);
    // ... and after a reload, which keeps its cursors but not the messages, it shows the newest
    // page of history and fetches older pages on demand.
    await f.page.reload();
    await shows(f.page, bodies.slice(-50));
    assert.equal(await f.page.locator('#convs .conv', { hasText: 'Team' }).locator('.unread').count(), 0, 'read before the reload');
    await f.page.getByRole('button', { name: 'Load older messages' }).focus();
    await f.page.keyboard.press('Enter');
    await shows(f.page, bodies);
    assert.equal(await f.page.getByRole('button', { name: 'Load older messages' }).isHidden(), true);
    // The group's other members are watched: Erin has left (her socket closed), Gina was never online.
    await f.page.locator('#chat-sub', { hasText: '3 members' }).waitFor();
    await f.page.locator('#people li[data-user="erin"] .dot[data-presence="offline"][aria-label="last seen just now"]').waitFor();
    await f.page.locator('#people li[data-user="gina"] .dot[data-presence="offline"][aria-label="offline"]').waitFor();
    assert.deepEqual(await f.page.locator('#people li').allTextContents(), ['erin', 'gina']);
    await f.page.locator('#scroller').evaluate((e) => (e.scrollTop = 0));
    await f.page.screenshot({ path: path.join(SHOTS, 'desktop-group-history.png') });
  });

  it('presence dots go online and offline (re-watched after a reconnect); the typing indicator shows, expires, and ends with the message', async () => {
    const a = await signIn('hana', { width: 390, height: 760 });
    const b = await signIn('ivan');
    await startDirect(a.page, 'ivan');
    await send(a.page, 'hi ivan');
    const row = b.page.locator('#convs .conv', { hasText: 'hana' });
    await row.click();
    await shows(b.page, ['hi ivan']);

    // Ivan sees Hana online: the header of the direct chat, and the dot in her list row.
    const sub = b.page.locator('#chat-sub');
    await b.page.locator('#chat-sub[data-presence="online"]', { hasText: 'online' }).waitFor();
    await row.locator('.dot[data-presence="online"][aria-label="online"]').waitFor();
    assert.equal(await row.locator('.dot').getAttribute('title'), 'online');
    // And Hana, on a phone, sees Ivan online.
    await a.page.locator('#chat-sub[data-presence="online"]', { hasText: 'online' }).waitFor();
    await a.page.screenshot({ path: path.join(SHOTS, 'phone-presence-online.png') });

    // Hana types: Ivan sees it in the open chat and in the list row.
    const composer = a.page.getByLabel('Message', { exact: true });
    const typingLine = b.page.locator('#typing');
    const typingShown = () => b.page.locator('#typing', { hasText: 'hana is typing…' }).waitFor();
    await composer.pressSequentially('typing', { delay: 30 });
    await typingShown();
    const seenAt = Date.now();
    await row.locator('.preview.typing', { hasText: 'hana is typing…' }).waitFor();
    await b.page.screenshot({ path: path.join(SHOTS, 'desktop-presence-typing.png') });

    // She stops: it expires PRESENCE.typingShowMs (6 s) after her one `typing` frame.
    await b.page.waitForFunction(() => document.getElementById('typing')?.textContent === '', null, { timeout: 20_000 });
    const shownMs = Date.now() - seenAt;
    assert.ok(shownMs > 4_000 && shownMs < 9_000, `shown for ${shownMs} ms, expected about 6 s`);
    await row.locator('.preview:not(.typing)', { hasText: 'hi ivan' }).waitFor();

    // She types again and sends: the message ends the indicator in the same render it appears.
    await composer.fill('');
    await composer.pressSequentially('see you', { delay: 30 });
    await typingShown();
    const typedAt = Date.now();
    await a.page.keyboard.press('Enter');
    const atArrival = await b.page.waitForFunction(
      () => ([...document.querySelectorAll('#messages li.msg .text')].some((e) => e.textContent === 'see you') ? { typing: document.getElementById('typing')?.textContent ?? null } : null),
      null,
      { timeout: WAIT },
    );
    assert.deepEqual(await atArrival.jsonValue(), { typing: '' });
    assert.ok(Date.now() - typedAt < 6_000, 'ended by the message, not by expiry');
    assert.equal(await typingLine.textContent(), '');
    assert.equal(await row.locator('.preview.typing').count(), 0);

    // Ivan's connection drops: presence is unknown meanwhile; after the reconnect it is watched again.
    await b.ctx.setOffline(true);
    await b.page.locator('#banner[data-status="offline"]').waitFor();
    assert.equal(await row.locator('.dot').count(), 0, 'no stale dot while disconnected');
    assert.equal(await sub.textContent(), '');
    await b.ctx.setOffline(false);
    await row.locator('.dot[data-presence="online"]').waitFor();
    await b.page.locator('#chat-sub[data-presence="online"]').waitFor();

    // Hana closes her page (a clean close: offline at once) and Ivan's dot turns offline.
    await a.page.close();
    await row.locator('.dot[data-presence="offline"][aria-label="last seen just now"]').waitFor({ timeout: 20_000 });
    await b.page.locator('#chat-sub[data-presence="offline"]', { hasText: 'last seen just now' }).waitFor();
    await b.page.screenshot({ path: path.join(SHOTS, 'desktop-presence-offline.png') });
  });
});
