/**
 * The web client's end-to-end encryption in a real browser (Debian's Chromium through
 * playwright-core) against the whole system (region + edge in workerd as real processes): two
 * users chat in a conversation encrypted by default, through reloads of either page, reading
 * each other's plaintext while the server holds only MLS ciphertext. Screenshots go to
 * .artifacts/web/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { fromBase64Url, readMlsHeader, type Msg, type MsgsFrame } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { SHOTS, WAIT, browserSkip, launchBrowser, sendText, signIn as signInAs } from './browser.ts';
import { startSystem, type System } from './system.ts';

/** An MLS message's content type, or null when `body` is not an MLS message. */
const mlsContent = (body: string) => {
  const bytes = fromBase64Url(body);
  return (bytes && readMlsHeader(bytes)?.contentType) ?? null;
};

describe('web client, end-to-end encrypted, in Chromium', { timeout: 600_000, skip: browserSkip }, () => {
  let sys: System;
  let browser: Browser;
  /** Uncaught errors in any page: there must be none. */
  const pageErrors: string[] = [];

  before(async () => {
    sys = await startSystem('embedded');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await sys?.stop();
  });

  const signIn = (user: string, viewport?: { width: number; height: number }) =>
    signInAs(browser, sys.edgeUrl, user, { ...(viewport ? { viewport } : {}), onPageError: (message) => pageErrors.push(`${user}: ${message}`) });

  const send = sendText;

  const texts = (page: Page) => page.locator('#messages li.msg .text').allTextContents();

  /** Waits until the open conversation shows exactly `expected`, every one sequenced, in seq order. */
  async function shows(page: Page, expected: string[]): Promise<void> {
    await page
      .waitForFunction(
        (want) => {
          const items = [...document.querySelectorAll<HTMLElement>('#messages li.msg')];
          const sequenced = ['sent', 'delivered', 'read'];
          return items.length === want.length && items.every((li, i) => sequenced.includes(li.dataset.state ?? '') && li.querySelector('.text')?.textContent === want[i]);
        },
        expected,
        { timeout: WAIT },
      )
      .catch(async (err: Error) => {
        const notices = await page.locator('#messages li.notice').allTextContents();
        throw new Error(`${err.message}\nshown: ${JSON.stringify(await texts(page))}\nnotices: ${JSON.stringify(notices)}\nwanted: ${JSON.stringify(expected)}`);
      });
    const seqs = await page.locator('#messages li.msg[data-seq]').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'in seq order');
    assert.equal(new Set(seqs).size, seqs.length, 'each seq once');
  }

  /** Nothing on the page looks like ciphertext: no long base64url run in any message, preview or notice. */
  async function noCiphertextShown(page: Page): Promise<void> {
    const shown = await page.locator('#convs .preview, #messages li .text, #messages li.notice').allTextContents();
    const leaked = shown.filter((t) => /[A-Za-z0-9_-]{40,}/.test(t));
    assert.deepEqual(leaked, [], 'no ciphertext on screen');
  }

  /** The conversation's log as the server hands it to a member's device (no decryption): every entry. */
  async function serverLog(user: string, conv: string): Promise<Msg[]> {
    const client = new SwitchboardClient({ url: sys.edgeUrl, token: () => devToken(sys.edgeUrl, user, 'probe'), socket: (u) => new WebSocket(u) as unknown as SocketLike });
    await client.connect();
    try {
      const page = (await client.request({ t: 'history', conv, limit: 100 })) as MsgsFrame;
      return page.msgs;
    } finally {
      client.close();
    }
  }

  it('two users chat in a conversation encrypted by default, through reloads of either page; the server holds only ciphertext', async () => {
    const w = await signIn('wendy');
    const x = await signIn('xavier', { width: 390, height: 760 });

    // New conversations are end-to-end encrypted unless the user unticks it.
    assert.equal(await w.page.getByLabel('End-to-end encrypted').isChecked(), true);
    await w.page.getByLabel('New conversation with').fill('xavier');
    await w.page.getByRole('button', { name: 'Start' }).click();
    await w.page.locator('#chat-title', { hasText: 'xavier' }).waitFor();
    await w.page.locator('#chat-e2e', { hasText: 'End-to-end encrypted' }).waitFor();
    const conv = (await w.page.evaluate(() => sessionStorage.getItem('switchboard.open')))!;
    assert.ok(conv, 'the open conversation');

    const said: string[] = [];
    const say = async (p: Page, text: string) => {
      said.push(text);
      await send(p, text);
    };
    await say(w.page, 'hello xavier, this is between us');
    await shows(w.page, said);

    // Xavier's list learns the conversation: marked encrypted, the decrypted text as its preview,
    // one unread (the commit that added his device is no message).
    const row = x.page.locator('#convs .conv', { hasText: 'wendy' });
    await row.locator('.preview', { hasText: 'hello xavier, this is between us' }).waitFor();
    await row.locator('.lock[aria-label="end-to-end encrypted"]').waitFor();
    await row.locator('.unread', { hasText: '1' }).waitFor();
    await row.click();
    await shows(x.page, said);
    await x.page.locator('#chat-e2e').waitFor();
    await say(x.page, 'hi wendy, nobody else can read this');
    await shows(x.page, said);
    await shows(w.page, said);
    await w.page.screenshot({ path: path.join(SHOTS, 'e2e-desktop-chat.png') });

    // Wendy reloads: her device, its keys and its groups are kept; what she read shows from this
    // device's store (the server's history is ciphertext), and the chat goes on both ways.
    await w.page.reload();
    await w.page.locator('#banner[data-status="online"]').waitFor({ state: 'attached' });
    await shows(w.page, said);
    await w.page.locator('#chat-e2e').waitFor();
    await say(w.page, 'back after a reload');
    await shows(x.page, said);
    await say(x.page, 'welcome back');
    await shows(w.page, said);

    // Then Xavier reloads.
    await x.page.reload();
    await x.page.locator('#banner[data-status="online"]').waitFor({ state: 'attached' });
    await shows(x.page, said);
    await say(x.page, 'my turn to reload');
    await shows(w.page, said);
    await say(w.page, 'still readable');
    await shows(x.page, said);
    await shows(w.page, said);
    await x.page.screenshot({ path: path.join(SHOTS, 'e2e-phone-after-reload.png') });

    // Both lists preview the newest text (this device's), never ciphertext.
    await w.page.locator('#convs .conv', { hasText: 'xavier' }).locator('.preview', { hasText: 'You: still readable' }).waitFor();
    await x.page.getByRole('button', { name: 'Back' }).click();
    await x.page.locator('#convs .conv', { hasText: 'wendy' }).locator('.preview', { hasText: 'wendy: still readable' }).waitFor();
    for (const p of [w.page, x.page]) await noCiphertextShown(p);
    assert.equal(await w.page.locator('#messages li.notice').count(), 0, 'no decryption failure, no key change');

    // The server holds MLS messages only: the conversation is encrypted, its log is ciphertext
    // (application messages, one per message said, plus commits) and no body holds any text said.
    const token = await devToken(sys.edgeUrl, 'wendy', 'probe');
    const details = (await (await fetch(`${sys.edgeUrl}/v1/conversations/${conv}`, { headers: { authorization: `Bearer ${token}` } })).json()) as { e2e: boolean };
    assert.equal(details.e2e, true);
    const log = await serverLog('wendy', conv);
    const bodies = log.filter((m) => !m.sys).map((m) => m.body);
    assert.deepEqual(bodies.filter((b) => mlsContent(b) === null), [], 'every body is an MLS message');
    assert.equal(bodies.filter((b) => mlsContent(b) === 'application').length, said.length, 'one application message per message said');
    assert.ok(bodies.some((b) => mlsContent(b) === 'commit'), 'and the commit that added Xavier');
    for (const text of said) {
      assert.ok(!bodies.some((b) => b.includes(text) || Buffer.from(b, 'base64url').toString('latin1').includes(text)), `"${text}" is nowhere on the server`);
    }
    // The list the region serves has ciphertext as the newest message, once it has drained there.
    for (let i = 0; ; i++) {
      const list = (await (await fetch(`${sys.edgeUrl}/v1/conversations`, { headers: { authorization: `Bearer ${token}` } })).json()) as { convs: { id: string; last: number; lastMsg: Msg | null }[] };
      const c = list.convs.find((e) => e.id === conv);
      if (c && c.last === log.at(0)?.seq) {
        assert.equal(mlsContent(c.lastMsg!.body), 'application');
        assert.ok(!said.includes(c.lastMsg!.body));
        break;
      }
      assert.ok(i < 600, 'the conversation reaches the region');
      await new Promise((r) => setTimeout(r, 100));
    }

    // A new device of Xavier's (another browser: keys of its own, added to no group) lists the
    // conversation as "Encrypted message" and shows its messages sealed, never as ciphertext.
    const x2 = await signIn('xavier');
    const row2 = x2.page.locator('#convs .conv', { hasText: 'wendy' });
    await row2.locator('.preview', { hasText: 'wendy: Encrypted message' }).waitFor();
    await row2.click();
    await x2.page.locator('#chat-e2e').waitFor();
    await x2.page.locator('#messages li.msg .text.sealed', { hasText: 'Encrypted message' }).first().waitFor();
    await noCiphertextShown(x2.page);
    await x2.page.screenshot({ path: path.join(SHOTS, 'e2e-new-device-sealed.png') });

    // That device's key is not the one Wendy trusts for Xavier: a new encrypted conversation with
    // him is refused before anything is created, and the key change shows in their conversation.
    await w.page.getByLabel('New conversation with').fill('xavier, yolanda');
    await w.page.getByLabel('Group title (optional)').fill('Planning');
    await w.page.getByRole('button', { name: 'Start' }).click();
    await w.page.locator('#new-error', { hasText: 'does not trust' }).waitFor();
    await w.page.locator('#convs .conv', { hasText: 'xavier' }).click();
    await w.page.locator('#messages li.notice', { hasText: 'xavier’s security key has changed' }).waitFor();
    await w.page.screenshot({ path: path.join(SHOTS, 'e2e-key-change.png') });

    assert.deepEqual(pageErrors, [], 'no uncaught error in any page');
  });
});
