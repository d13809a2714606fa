/**
 * The web client's message requests in a real browser (Debian's Chromium through playwright-core)
 * against the whole system: a stranger's conversation shows as a request, offers Accept / Decline
 * / Block in place of the composer, and once accepted is a chat like any other. Screenshots go to
 * .artifacts/web/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import WebSocket from 'ws';
import { SwitchboardClient, createConversation, devToken, type SocketLike } from '@switchboard/protocol/client';
import type { Msg } from '@switchboard/protocol';
import { SHOTS, WAIT, browserSkip, launchBrowser, sendText, signIn } from './browser.ts';
import { startSystem, type System } from './system.ts';

describe('web client: message requests, in Chromium', { timeout: 600_000, skip: browserSkip }, () => {
  let sys: System;
  let browser: Browser;
  const closers: (() => unknown)[] = [];

  before(async () => {
    sys = await startSystem('embedded', { edgeVars: { MESSAGE_REQUESTS: 'true' } });
    browser = await launchBrowser();
  });
  after(async () => {
    for (const c of closers) await c();
    await browser?.close();
    await sys?.stop();
  });

  /** A user on the SDK (the stranger), collecting what they receive. */
  const sdk = async (user: string) => {
    const got: Msg[] = [];
    const client = new SwitchboardClient({ url: sys.edgeUrl, token: () => devToken(sys.edgeUrl, user, 'sdk'), socket: (u) => new WebSocket(u) as unknown as SocketLike, onMessage: (m) => got.push(m) });
    closers.push(() => client.close());
    await client.connect();
    return { client, got };
  };

  it('a request is marked in the list; accepting it brings the composer; declining with a block removes the stranger', async () => {
    const spam = await sdk('wc-stranger');
    const conv = await createConversation(sys.edgeUrl, await devToken(sys.edgeUrl, 'wc-stranger', 'sdk'), { members: ['wc-rita'], direct: true });
    assert.deepEqual(conv.requests, ['wc-rita']);
    await spam.client.send(conv.id, 'hi rita, it is me');

    const r = await signIn(browser, sys.edgeUrl, 'wc-rita');
    const row = r.page.locator('#convs .conv', { hasText: 'wc-stranger' });
    await row.locator('.preview', { hasText: 'Request from wc-stranger' }).waitFor();
    await row.click();
    await r.page.locator('#messages li.msg .text', { hasText: 'hi rita, it is me' }).waitFor();
    await r.page.locator('#request-bar').waitFor();
    assert.match(await r.page.locator('#request-text').textContent() ?? '', /wc-stranger wants to message you/);
    assert.equal(await r.page.locator('#composer').isHidden(), true, 'no composer until the request is answered');
    await r.page.screenshot({ path: path.join(SHOTS, 'request.png') });

    await r.page.getByRole('button', { name: 'Accept' }).click();
    await r.page.locator('#composer').waitFor();
    assert.equal(await r.page.locator('#request-bar').isHidden(), true);
    await sendText(r.page, 'hello, who is this?');
    await r.page.locator('#messages li.msg.mine[data-state]', { hasText: 'hello, who is this?' }).waitFor();
    for (const end = Date.now() + WAIT; !spam.got.some((m) => m.body === 'hello, who is this?'); ) {
      if (Date.now() > end) throw new Error('the reply did not reach the stranger');
      await new Promise((res) => setTimeout(res, 100));
    }

    // A second stranger: declined with a block, which leaves the conversation and blocks them.
    const pest = await sdk('wc-pest');
    const c2 = await createConversation(sys.edgeUrl, await devToken(sys.edgeUrl, 'wc-pest', 'sdk'), { members: ['wc-rita'], direct: true });
    await pest.client.send(c2.id, 'buy now');
    const row2 = r.page.locator('#convs .conv', { hasText: 'wc-pest' });
    await row2.locator('.preview', { hasText: 'Request from wc-pest' }).waitFor();
    await row2.click();
    await r.page.getByRole('button', { name: 'Block' }).click();
    await r.page.locator('#request-bar').waitFor({ state: 'hidden' });
    const rita = await devToken(sys.edgeUrl, 'wc-rita', 'http');
    const blocks = (await (await fetch(`${sys.edgeUrl}/v1/blocks`, { headers: { authorization: `Bearer ${rita}` } })).json()) as { blocks: { user: string }[] };
    assert.deepEqual(blocks.blocks.map((b) => b.user), ['wc-pest']);
    await assert.rejects(pest.client.send(c2.id, 'hello?'), (err: Error & { code?: string }) => err.code === 'blocked');
    await r.ctx.close();
  });

  it('an end-to-end encrypted conversation started in the web client with a stranger: a request, readable, accepted, then both chat', async () => {
    const a = await signIn(browser, sys.edgeUrl, 'wc-ann');
    const b = await signIn(browser, sys.edgeUrl, 'wc-ben');
    assert.equal(await a.page.getByLabel('End-to-end encrypted').isChecked(), true);
    await a.page.getByLabel('New conversation with').fill('wc-ben');
    await a.page.getByRole('button', { name: 'Start' }).click();
    await a.page.locator('#chat-e2e', { hasText: 'End-to-end encrypted' }).waitFor();
    await sendText(a.page, 'hello ben, encrypted');
    await a.page.locator('#messages li.msg.mine[data-state]', { hasText: 'hello ben, encrypted' }).waitFor();

    const row = b.page.locator('#convs .conv', { hasText: 'wc-ann' });
    await row.locator('.preview', { hasText: 'Request from wc-ann' }).waitFor();
    await row.click();
    await b.page.locator('#messages li.msg .text', { hasText: 'hello ben, encrypted' }).waitFor();
    await b.page.getByRole('button', { name: 'Accept' }).click();
    await b.page.locator('#composer').waitFor();
    await sendText(b.page, 'hi ann, accepted');
    await a.page.locator('#messages li.msg .text', { hasText: 'hi ann, accepted' }).waitFor();
    await b.page.screenshot({ path: path.join(SHOTS, 'request-e2e-accepted.png') });
    await a.ctx.close();
    await b.ctx.close();
  });
});
