/** What the edge calls on a revocations shard (RevocationsDO). Times are Unix seconds; 0: never revoked. */
export interface RevocationsRpc {
  /** Tokens of `user` issued (`iat`) before this are refused. */
  revokedBefore(user: string): Promise<number>;
  /** Every revocation of the shard (user → time) when it holds at most `max`; null when it holds more. */
  snapshot(max: number): Promise<Record<string, number> | null>;
  /** Moves the user's revocation time forward to `before` (never back); returns the time now in force. */
  revoke(user: string, before: number): Promise<number>;
}
