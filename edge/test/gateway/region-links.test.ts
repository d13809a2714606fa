import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RouteOp } from '@switchboard/protocol';
import { RegionLinks } from '../../src/gateway/region-links.ts';
import { homeRegionFor, parseRegions } from '../../src/regions.ts';

const regions = parseRegions('eu=http://eu.test,us=http://us.test', () => 'http://unused', 'weur=eu,enam=us', (m) => new Error(m));
const up = (gw: string): RouteOp => ({ op: 'up', user: 'u', device: 'd', edge: 'http://e', gw, conn: 1 });

/** Regions that record every call by their URL; those in `down` throw. */
function fleet() {
  const calls: { url: string; path: string; body: any }[] = [];
  const down = new Set<string>();
  return {
    calls,
    down,
    of: (url: string) => calls.filter((c) => c.url === url),
    links: (gateway: string, events: string[] = []) =>
      new RegionLinks({
        regions,
        internalSecret: 's'.repeat(32),
        gateway: () => gateway,
        call: (target) => async <T>(path: string, body: unknown): Promise<T> => {
          calls.push({ url: target.regionUrl, path, body });
          if (down.has(target.regionUrl)) throw new Error('region down');
          return {} as T;
        },
        gatherMs: 0,
        onEpoch: () => {},
        onRecovered: (region) => events.push(`recovered ${region}`),
        onError: (region) => events.push(`failed ${region}`),
        onCursorsFailed: () => events.push('cursors back'),
      }),
  };
}

describe('RegionLinks (a gateway and every region)', () => {
  it('sends routes and presence to every region, read positions to the nearest only', async () => {
    const f = fleet();
    const links = f.links('gw:enam:3');
    assert.equal(links.nearRegion(), 'us');
    assert.equal(links.near().regionUrl, 'http://us.test');
    links.route(up('gw:enam:3'));
    links.presenceOp({ op: 'connect', user: 'u', device: 'd' });
    links.writeCursors([{ user: 'u', device: 'd', conv: 'c', seq: 4 }]);
    await links.flush();
    for (const url of ['http://eu.test', 'http://us.test']) {
      const body = f.of(url)[0]!.body;
      assert.equal(body.routes.length, 1);
      assert.equal(body.presence.length, 1);
      assert.equal(body.cursors.length, url === 'http://us.test' ? 1 : 0, url);
    }
  });

  it('a gateway with no region for its placement talks to the first region', () => {
    assert.equal(fleet().links('gw:apac:0').nearRegion(), 'eu');
  });

  it('a region that failed and answers again is reported recovered once, and the others are not held up', async () => {
    const f = fleet();
    const events: string[] = [];
    const links = f.links('gw:weur:0', events);
    f.down.add('http://us.test');
    links.route(up('gw:weur:0'));
    await links.flush();
    assert.deepEqual(events, ['failed us']);
    assert.equal(f.of('http://eu.test').length, 1);
    f.down.clear();
    links.presenceOp({ op: 'beat', user: 'u', device: 'd', age: 0 });
    await links.flush();
    links.presenceOp({ op: 'beat', user: 'u', device: 'd', age: 0 });
    await links.flush();
    assert.deepEqual(events, ['failed us', 'recovered us']);
  });
});

describe('parseRegions', () => {
  const fail = (m: string) => new Error(m);
  it('without REGIONS is one region, primary, at REGION_URL', () => {
    const r = parseRegions(undefined, () => 'http://r.test', undefined, fail);
    assert.deepEqual([...r.urls], [['primary', 'http://r.test']]);
    assert.equal(r.primary, 'primary');
    assert.equal(r.named, false);
    // No home region is stored: every conversation lives in the one region.
    assert.equal(homeRegionFor(r, undefined, 'local'), undefined);
    assert.throws(() => homeRegionFor(r, 'us', 'local'), /region: "us" is not a region of this deployment \(primary\)/);
  });
  it("homes a conversation in the region asked for, else the creator's nearest", () => {
    assert.equal(regions.named, true);
    assert.equal(homeRegionFor(regions, undefined, 'enam'), 'us');
    assert.equal(homeRegionFor(regions, undefined, 'apac'), 'eu');
    assert.equal(homeRegionFor(regions, 'eu', 'enam'), 'eu');
  });
  it('names each bad value with its variable', () => {
    assert.throws(() => parseRegions('eu=ftp://x', () => '', '', fail), /REGIONS: region eu: expected an http\(s\) URL/);
    assert.throws(() => parseRegions('eu', () => '', '', fail), /REGIONS: expected name=value pairs/);
    assert.throws(() => parseRegions('eu=http://a,eu=http://b', () => '', '', fail), /listed twice/);
    assert.throws(() => parseRegions('eu=http://a', () => '', 'weur=us', fail), /PLACEMENT_REGIONS: placement weur names region us, which REGIONS does not list \(eu\)/);
  });
});
