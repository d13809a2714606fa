import type { DeviceCursor, PresenceOp, RouteOp } from '@switchboard/protocol';
import type { RegionTarget } from '../internal/region-client.ts';
import { regionOfPlacement, regionTarget, type Regions } from '../regions.ts';
import { placementOf } from './placement.ts';
import { RegionOps, type RegionCall } from './region-ops.ts';

export interface RegionLinksOptions {
  regions: Regions;
  internalSecret: string;
  /** The gateway's name once known (its placement decides its nearest region). */
  gateway: () => string | null;
  /** A signed call to one region (callRegion with the gateway's metrics). */
  call: (target: RegionTarget) => RegionCall;
  gatherMs: number;
  onEpoch: (region: string, epoch: string) => void;
  /** A region answered again after failing batches: what it missed meanwhile should go to it again. */
  onRecovered: (region: string) => void;
  onError: (region: string, path: string, count: number, err: unknown) => void;
  onCursorsFailed: (cursors: DeviceCursor[]) => void;
}

/**
 * A gateway's batched calls to every region (regions.ts). Routes and presence go to each region,
 * in its own RegionOps (a region that is down fails its own batches only; once it answers again
 * the gateway sends it every socket's route, `onRecovered`); read positions, resumes and watches
 * go to the region nearest the gateway. With one region this is one RegionOps, as before.
 */
export class RegionLinks {
  private readonly ops = new Map<string, RegionOps>();
  /** Regions whose last batch failed. */
  private readonly failing = new Set<string>();

  constructor(private readonly o: RegionLinksOptions) {
    for (const region of o.regions.urls.keys()) {
      const target = regionTarget(o.regions, o.internalSecret, region);
      this.ops.set(
        region,
        new RegionOps({
          call: o.call(target),
          gatherMs: o.gatherMs,
          onEpoch: (epoch) => o.onEpoch(region, epoch),
          onError: (path, count, err) => {
            this.failing.add(region);
            o.onError(region, path, count, err);
          },
          onAnswered: () => {
            if (this.failing.delete(region)) o.onRecovered(region);
          },
          onCursorsFailed: o.onCursorsFailed,
        }),
      );
    }
  }

  /** The region nearest this gateway's placement. */
  nearRegion(): string {
    const gw = this.o.gateway();
    return gw ? regionOfPlacement(this.o.regions, placementOf(gw)) : this.o.regions.primary;
  }

  /** Where this gateway's own reads go (resume, watch). */
  near(): RegionTarget {
    return regionTarget(this.o.regions, this.o.internalSecret, this.nearRegion());
  }

  route(op: RouteOp): void {
    for (const ops of this.ops.values()) ops.route(op);
  }

  /** A route to one region only (that region lost its routes). */
  routeTo(region: string, op: RouteOp): void {
    this.ops.get(region)?.route(op);
  }

  presenceOp(op: PresenceOp): void {
    for (const ops of this.ops.values()) ops.presenceOp(op);
  }

  writeCursors(list: DeviceCursor[]): void {
    this.nearOps().writeCursors(list);
  }

  /** What is queued now has been sent to the nearest region (a new socket's `hello` waits for it). */
  whenSent(): Promise<void> {
    return this.nearOps().whenSent();
  }

  /** Sends what is queued now to every region; resolves once each was sent (answered or failed). */
  async flush(): Promise<void> {
    await Promise.all([...this.ops.values()].map((ops) => ops.flush()));
  }

  private nearOps(): RegionOps {
    return this.ops.get(this.nearRegion())!;
  }
}
