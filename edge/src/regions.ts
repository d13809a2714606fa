import { ProtocolError } from '@switchboard/protocol';
import type { RegionTarget } from './internal/region-client.ts';

/**
 * The regional cores an edge knows, and which one each part of the edge talks to.
 *
 * - A conversation has one home region, chosen when it is created (an explicit `region`, else the
 *   region nearest the creator's placement) and kept in its ConversationDO: its outbox drains
 *   there, its history is read there, and that region's Kafka fans it out.
 * - A gateway talks to the region nearest its placement (resumes, watches, read positions), and
 *   sends its routes and presence to every region, so any region's fan-out finds a device
 *   wherever it is connected and any region can answer a watch.
 * - Everything a user owns that is not a conversation's (their conversation list, read positions,
 *   keys, push registrations, consent) is in Cassandra, which replicates every datacenter to every
 *   other: the nearest region reads it locally.
 */
export interface Regions {
  /** Region name → base URL, in configured order; the first is the default. */
  urls: ReadonlyMap<string, string>;
  /** Gateway placement → its nearest region (placements not listed: the default region). */
  nearest: ReadonlyMap<string, string>;
  /**
   * The first region: where a single-region deployment, and anything unplaced, goes (and every
   * conversation created before REGIONS was set: list the old region first).
   */
  primary: string;
  /** REGIONS is set: conversations are created with a home region. */
  named: boolean;
}

const NAME = /^[a-z0-9-]{1,32}$/;

/**
 * `REGIONS` (`eu=https://…,us=https://…`) and `PLACEMENT_REGIONS` (`weur=eu,enam=us`). Without
 * REGIONS there is one region, `primary`, at REGION_URL. Throws a message naming the variable.
 */
export function parseRegions(regions: string | undefined, regionUrl: () => string, placementRegions: string | undefined, fail: (message: string) => Error): Regions {
  const urls = new Map<string, string>();
  if (regions === undefined || regions.trim() === '') urls.set('primary', regionUrl());
  else {
    for (const [name, value] of pairs(regions, 'REGIONS', fail)) {
      let origin: string;
      try {
        const u = new URL(value);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
        origin = u.origin;
      } catch {
        throw fail(`REGIONS: region ${name}: expected an http(s) URL, got ${JSON.stringify(value)}`);
      }
      if (urls.has(name)) throw fail(`REGIONS: region ${name} is listed twice`);
      urls.set(name, origin);
    }
  }
  const primary = urls.keys().next().value!;
  const nearest = new Map<string, string>();
  for (const [placement, region] of pairs(placementRegions ?? '', 'PLACEMENT_REGIONS', fail)) {
    if (!urls.has(region)) throw fail(`PLACEMENT_REGIONS: placement ${placement} names region ${region}, which REGIONS does not list (${[...urls.keys()].join(', ')})`);
    nearest.set(placement, region);
  }
  return { urls, nearest, primary, named: urls.size > 1 || primary !== 'primary' };
}

function pairs(raw: string, variable: string, fail: (message: string) => Error): [string, string][] {
  const out: [string, string][] = [];
  for (const item of raw.split(/[,\s]+/).filter(Boolean)) {
    const eq = item.indexOf('=');
    const [name, value] = eq < 0 ? [item, ''] : [item.slice(0, eq), item.slice(eq + 1)];
    if (!NAME.test(name) || value === '') throw fail(`${variable}: expected name=value pairs (names of [a-z0-9-]{1,32}), got ${JSON.stringify(item)}`);
    out.push([name, value]);
  }
  return out;
}

/** The region nearest a placement. */
export function regionOfPlacement(r: Regions, placement: string): string {
  return r.nearest.get(placement) ?? r.primary;
}

/** Where to call `region`, signed with `internalSecret`; an unknown region (configuration dropped it) throws. */
export function regionTarget(r: Regions, internalSecret: string, region: string): RegionTarget {
  const url = r.urls.get(region);
  if (url === undefined) throw new UnknownRegion(region, [...r.urls.keys()]);
  return { regionUrl: url, internalSecret };
}

export class UnknownRegion extends Error {
  override name = 'UnknownRegion';
  constructor(
    readonly region: string,
    known: string[],
  ) {
    super(`region ${region} is not configured (REGIONS lists ${known.join(', ')})`);
  }
}

/**
 * The home region of a new conversation: the one asked for (refused with `invalid_frame` when
 * unknown), else the region nearest the creator's placement; none (undefined) without REGIONS,
 * where every conversation lives in the one region.
 */
export function homeRegionFor(r: Regions, asked: string | undefined, placement: string): string | undefined {
  if (!r.named && (asked === undefined || asked === r.primary)) return undefined;
  if (asked === undefined) return regionOfPlacement(r, placement);
  if (!r.urls.has(asked)) throw new ProtocolError('invalid_frame', `region: ${JSON.stringify(asked)} is not a region of this deployment (${[...r.urls.keys()].join(', ')})`);
  return asked;
}
