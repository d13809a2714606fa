import { GATEWAY_ID_PATTERN } from '@switchboard/protocol';
import { gatewayName } from '../gateway/placement.ts';

/**
 * Where a conversation's members are connected, as its ConversationDO knows it: the gateway a
 * member's last call came from (every call a gateway makes for a device names it), else the
 * gateway of the edge's default placement. Only a guess for the live path: a member connected
 * elsewhere is not reached live, and the region's fan-out, which follows the real routes,
 * delivers to them. Memory only, bounded.
 */
export class MemberGateways {
  private readonly learned = new Map<string, string>();
  /** Grows whenever a member's gateway changes: grouping caches key on it. */
  private version = 0;
  private cache: { members: readonly string[]; version: number; groups: Map<string, string[]> } | null = null;

  constructor(
    private readonly placement: string,
    private readonly shards: number,
    private readonly max = 10_000,
  ) {}

  /** `user`'s device called from gateway `gw` (ignored unless it is a gateway name). */
  learn(user: string, gw: string | undefined): void {
    if (gw === undefined || this.learned.get(user) === gw || !GATEWAY_ID_PATTERN.test(gw)) return;
    if (this.learned.size >= this.max) this.learned.delete(this.learned.keys().next().value!);
    this.learned.set(user, gw);
    this.version++;
  }

  of(user: string): string {
    return this.learned.get(user) ?? gatewayName(this.placement, user, this.shards);
  }

  /**
   * `members` grouped by gateway, in member order within each. The last answer is kept while the
   * same members array (the sequencer's, replaced on every membership change) is asked about.
   */
  group(members: readonly string[]): Map<string, string[]> {
    const c = this.cache;
    if (c && c.members === members && c.version === this.version) return c.groups;
    const groups = new Map<string, string[]>();
    for (const user of members) {
      const gw = this.of(user);
      const list = groups.get(gw);
      if (list) list.push(user);
      else groups.set(gw, [user]);
    }
    this.cache = { members, version: this.version, groups };
    return groups;
  }
}
