/** What the edge's signed internal routes call on a replay guard (ReplayGuardDO). */
export interface ReplayGuardRpc {
  /** True the first time a nonce is seen; false for a replay. */
  admit(nonce: string): Promise<boolean>;
}
