import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { signRequest } from '@switchboard/protocol';
import { freePort } from '../../scripts/lib/ports.ts';
import { ROOT } from '../../scripts/lib/processes.ts';
import { hasSample, metricFamilies, sampleSum } from '../../scripts/lib/prom-text.ts';
import { EDGE_METRICS } from '../src/metrics/catalog.ts';
import { startSystem, type Engines, type System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Operators' metrics end to end: the region's `GET /metrics` and the edge's signed
 * `GET /internal/metrics` are scraped before and after traffic through the real processes, and
 * the documented metrics move (counters grow by what was done; histograms gain samples).
 */
export function metricsSuite(engines: Engines): void {
  describe(`metrics (${engines} engines)`, { timeout: 300_000 }, () => {
    let sys: System;
    const sockets: TestSocket[] = [];
    const open = async (user: string, device = 'd1', opts: { autoAck?: boolean } = {}) => {
      const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device), opts);
      sockets.push(s);
      return s;
    };
    const newConv = async (owner: string, others: string[]) => (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, owner, 'setup'), others)).id;
    const edgeScrape = async (signed = true) => {
      const headers = signed ? await signRequest(sys.internalSecret, 'GET', '/internal/metrics', '') : {};
      return fetch(`${sys.edgeUrl}/internal/metrics`, { headers });
    };
    const edge = async () => {
      const res = await edgeScrape();
      assert.equal(res.status, 200, await res.clone().text());
      return res.text();
    };
    const region = async () => {
      const res = await fetch(`${sys.regionUrl}/metrics`);
      assert.equal(res.status, 200);
      return res.text();
    };
    /** Polls until `check` passes on fresh scrapes (conversations' counts ride to their gateways every few seconds), doing `poke` between tries. */
    const eventually = async (what: string, check: () => Promise<void>, poke: () => Promise<void> = async () => {}, timeoutMs = 45_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          return await check();
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`);
          await poke();
          await sleep(500);
        }
      }
    };

    before(async () => {
      sys = await startSystem(engines);
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await sys?.stop();
    });

    it("the edge's /internal/metrics answers signed scrapes only, with every family of the edge's list", async () => {
      assert.equal((await edgeScrape(false)).status, 401, 'unsigned');
      const headers = await signRequest(sys.internalSecret, 'GET', '/internal/metrics', '');
      assert.equal((await fetch(`${sys.edgeUrl}/internal/metrics`, { headers })).status, 200);
      assert.equal((await fetch(`${sys.edgeUrl}/internal/metrics`, { headers })).status, 401, 'replayed');
      const wrong = await signRequest('not-the-secret-0123456789abcdef', 'GET', '/internal/metrics', '');
      assert.equal((await fetch(`${sys.edgeUrl}/internal/metrics`, { headers: wrong })).status, 401, 'signed with another key');
      const families = metricFamilies(await edge());
      for (const [name, def] of Object.entries(EDGE_METRICS)) assert.equal(families.get(name), def.type, name);
    });

    it('npm run metrics:edge-proxy lets a Prometheus that cannot sign scrape the edge', async () => {
      const port = await freePort();
      const proxy = spawn(process.execPath, ['--import', 'tsx', 'scripts/edge-metrics-proxy.ts', '--edge', sys.edgeUrl, '--port', String(port)], {
        cwd: ROOT,
        env: { ...process.env, INTERNAL_SECRET: sys.internalSecret },
        stdio: 'ignore',
      });
      try {
        let text = '';
        for (let i = 0; i < 100 && !text; i++) {
          text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => (r.ok ? r.text() : ''), () => '');
          if (!text) await sleep(100);
        }
        assert.equal(metricFamilies(text).get('switchboard_edge_connections'), 'gauge');
        assert.equal((await fetch(`http://127.0.0.1:${port}/internal/metrics`)).status, 404, 'nothing else');
      } finally {
        proxy.kill();
      }
    });

    it('counters grow and histograms gain samples as devices connect, send, receive, misbehave and leave', async () => {
      const [e0, r0] = [await edge(), await region()];
      const direct = await newConv('mia', ['noah']);
      const group = await newConv('mia', ['noah', 'olga']);
      const mia = await open('mia');
      const noah = await open('noah');
      const olga = await open('olga', 'd1', { autoAck: false }); // never acks: retransmits
      const SENDS = 4;
      for (let i = 1; i <= SENDS; i++) await mia.request({ t: 'send', conv: direct, cmid: `d${i}`, body: `direct ${i}` });
      for (let i = 1; i <= SENDS; i++) await mia.request({ t: 'send', conv: group, cmid: `g${i}`, body: `group ${i}` });
      await noah.waitSeqs(direct, SENDS);
      await noah.waitSeqs(group, SENDS);
      await olga.waitSeqs(group, SENDS);
      noah.raw('{"t":"send"'); // does not decode
      assert.equal((await noah.next((f) => f.t === 'error' && f.code === 'bad_json')).t, 'error');
      let extra = 0;
      // Each more send is read by noah; the conversations' counts ride on the answers.
      const poke = async () => {
        extra++;
        await mia.request({ t: 'send', conv: direct, cmid: `more${extra}`, body: `more ${extra}` });
      };

      const delta = (before: string, after: string, name: string, labels: Record<string, string> = {}) => sampleSum(after, name, labels) - sampleSum(before, name, labels);
      await eventually(
        'edge metrics',
        async () => {
          const e1 = await edge();
          const d = (name: string, labels?: Record<string, string>) => delta(e0, e1, name, labels);
          assert.ok(sampleSum(e1, 'switchboard_edge_connections') >= 3, 'connections: the three sockets are open');
          assert.ok(d('switchboard_edge_connects_total') >= 3, 'connects');
          assert.ok(d('switchboard_edge_frames_in_total', { type: 'send' }) >= 2 * SENDS, 'frames in by type');
          assert.ok(d('switchboard_edge_frames_in_total', { type: 'ack' }) >= 1, 'acks in');
          assert.equal(d('switchboard_edge_frames_in_total', { type: 'invalid' }), 1, 'the frame that did not decode');
          assert.equal(d('switchboard_edge_errors_total', { code: 'bad_json', source: 'frame' }), 1, 'its error, by code');
          assert.ok(d('switchboard_edge_deliveries_total', { path: 'live' }) >= SENDS, 'the direct conversation goes by the live path');
          assert.ok(d('switchboard_edge_deliveries_total', { path: 'region' }) >= 2 * SENDS, "the group by the region's fan-out (LIVE_PUSH_MAX_MEMBERS=2)");
          assert.ok(d('switchboard_edge_retransmits_total') >= 1, 'olga never acks: retransmitted');
          assert.ok(d('switchboard_edge_region_call_duration_seconds_count', { path: '/internal/gateway', result: 'ok' }) >= 1, "gateways' batched region calls");
          assert.ok(d('switchboard_edge_messages_sequenced_total') >= 2 * SENDS, 'sequenced (riding from the ConversationDOs)');
          assert.ok(d('switchboard_edge_live_push_age_seconds_count') >= SENDS, 'live push ages');
          assert.ok(d('switchboard_edge_outbox_drains_total', { result: 'ok' }) >= 1, 'outbox drains');
          assert.ok(d('switchboard_edge_outbox_age_seconds_count') >= 1, 'outbox ages');
          assert.ok(d('switchboard_edge_region_call_duration_seconds_count', { path: '/internal/events', result: 'ok' }) >= 1, 'drain calls timed');
          for (const h of ['switchboard_edge_live_push_age_seconds', 'switchboard_edge_outbox_age_seconds'])
            assert.equal(sampleSum(e1, `${h}_bucket`, { le: '+Inf' }), sampleSum(e1, `${h}_count`), `${h}: +Inf bucket = count`);
        },
        poke,
      );

      await noah.close();
      await eventually('closes', async () => {
        assert.ok(delta(e0, await edge(), 'switchboard_edge_closes_total', { code: '1000', by: 'client' }) >= 1, 'a client close, by code');
      });
      await edge().then((text) => assert.ok(delta(e0, text, 'switchboard_edge_errors_total', { code: 'unauthorized', source: 'http' }) === 0));
      assert.equal((await fetch(`${sys.edgeUrl}/v1/conversations`)).status, 401);
      await eventually('http errors', async () => {
        assert.equal(delta(e0, await edge(), 'switchboard_edge_errors_total', { code: 'unauthorized', source: 'http' }), 1, 'an HTTP error, by code');
      });

      await eventually('region metrics', async () => {
        const r1 = await region();
        const d = (name: string, labels?: Record<string, string>) => delta(r0, r1, name, labels);
        assert.ok(d('switchboard_region_http_request_duration_seconds_count', { method: 'POST', route: '/internal/events', status: '200' }) >= 2, 'events requests by route and status');
        assert.ok(d('switchboard_region_http_request_duration_seconds_count', { route: '/internal/gateway', status: '200' }) >= 1, 'gateway batches');
        assert.ok(d('switchboard_region_events_messages_total') >= 2 * SENDS, 'messages received');
        for (const point of ['region_received', 'stored', 'published', 'fanout_consumed', 'delivered']) assert.ok(d('switchboard_region_message_age_seconds_count', { point }) >= SENDS, `message age at ${point}`);
        assert.ok(d('switchboard_region_operation_duration_seconds_count', { op: 'store' }) >= 1, 'store timed');
        assert.ok(d('switchboard_storage_operation_duration_seconds_count', { op: 'appendMessages', result: 'ok' }) >= 1, 'storage calls timed');
        assert.ok(d('switchboard_fanout_records_total') >= 2 * SENDS, 'fan-out records');
        assert.ok(d('switchboard_fanout_deliver_calls_total') >= 1, 'group deliveries to the edge (a run of records per call)');
        assert.ok(d('switchboard_presence_heartbeats_total') >= 3, 'the three connects are heartbeats');
        assert.ok(hasSample(r1, 'switchboard_queue_lag_records', { topic: 'fanout', group: 'fanout' }), 'fan-out lag is reported');
        assert.ok(sampleSum(r1, 'switchboard_region_process_cpu_seconds_total') > 0, 'process metrics');
      });
      const lag = sampleSum(await region(), 'switchboard_queue_lag_records', { topic: 'fanout', group: 'fanout' });
      assert.ok(lag >= 0 && lag < 1000, `fan-out lag ${lag}`);
    });
  });
}
