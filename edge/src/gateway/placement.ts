/**
 * Which gateway holds a user's sockets: `gw:<placement>:<shard>`, shard = hash(user) mod shards.
 * Every part of the edge computes it the same way (the Worker at connect, a ConversationDO for
 * members it has not heard from), so a user's devices in one placement share one gateway.
 */

/** Cloudflare's Durable Object location hints, the placements a connection can get in production. */
export const LOCATION_HINTS = ['wnam', 'enam', 'sam', 'weur', 'eeur', 'apac', 'oc', 'afr', 'me'] as const;
export type LocationHint = (typeof LOCATION_HINTS)[number];

/** FNV-1a, 32 bits: stable across runtimes and releases (the shard of a user must never move by itself). */
export function shardOf(user: string, shards: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % shards;
}

export function gatewayName(placement: string, user: string, shards: number): string {
  return `gw:${placement}:${shardOf(user, shards)}`;
}

/**
 * The placements a gateway may be in: the configured one, or (without one, as in production,
 * where each connection is placed by its location) every location hint.
 */
export function placementsOf(configured: string): string[] {
  return configured ? configured.split(',') : [...LOCATION_HINTS];
}

/** The gateways that may hold a user's sockets: theirs in each placement. */
export function userGateways(configured: string, user: string, shards: number): string[] {
  return placementsOf(configured).map((p) => gatewayName(p, user, shards));
}

/** Every gateway of the placements. */
export function gatewaysOf(placements: string[], shards: number): string[] {
  return placements.flatMap((p) => Array.from({ length: shards }, (_, k) => `gw:${p}:${k}`));
}

/** The placement part of a gateway name. */
export function placementOf(gateway: string): string {
  return gateway.slice(3, gateway.lastIndexOf(':'));
}

/** The location hint to create a gateway with: its placement, when that is one of Cloudflare's. */
export function locationHint(gateway: string): LocationHint | undefined {
  const p = placementOf(gateway);
  return (LOCATION_HINTS as readonly string[]).includes(p) ? (p as LocationHint) : undefined;
}

/** The parts of Cloudflare's `request.cf` that place a connection. */
export interface RequestPlace {
  continent?: string;
  country?: string;
  longitude?: string | number;
}

const MIDDLE_EAST = new Set(['AE', 'BH', 'IL', 'IQ', 'IR', 'JO', 'KW', 'LB', 'OM', 'PS', 'QA', 'SA', 'SY', 'YE']);

/**
 * The placement of a new connection: the configured one (development, single-placement
 * deployments; of several configured, the one `asked` for, else the first), else the location
 * hint nearest to where the request arrived. Unknown → `enam`.
 */
export function placementFor(configured: string, cf: RequestPlace | undefined, asked?: string | null): string {
  if (configured !== '') {
    const list = configured.split(',');
    return asked && list.includes(asked) ? asked : list[0]!;
  }
  const lon = Number(cf?.longitude);
  if (cf?.country && MIDDLE_EAST.has(cf.country)) return 'me';
  switch (cf?.continent) {
    case 'NA':
      return Number.isFinite(lon) && lon < -100 ? 'wnam' : 'enam';
    case 'SA':
      return 'sam';
    case 'EU':
      return Number.isFinite(lon) && lon > 20 ? 'eeur' : 'weur';
    case 'AS':
      return 'apac';
    case 'OC':
      return 'oc';
    case 'AF':
      return 'afr';
    default:
      return 'enam';
  }
}

/** The placement of a request: `placementFor` with its `cf` and its `?placement=` query. */
export function placementOfRequest(configured: string, req: Request): string {
  return placementFor(configured, (req as { cf?: RequestPlace }).cf, new URL(req.url).searchParams.get('placement'));
}
