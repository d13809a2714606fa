/** What the edge calls on a revocations shard (RevocationsDO). Times are Unix seconds; 0: never revoked. */
export interface RevocationsRpc {
  /** Tokens of `user` issued (`iat`) before this are refused. */
  revokedBefore(user: string): Promise<number>;
  /** Moves the user's revocation time forward to `before` (never back); returns the time now in force. */
  revoke(user: string, before: number): Promise<number>;
}
