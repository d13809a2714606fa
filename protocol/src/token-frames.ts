import { z } from 'zod';
import { Rid } from './ids.ts';

/** A token in a `refresh` frame: a JWT of at most this many characters. */
export const MAX_TOKEN_CHARS = 8192;

// ---- client → server -------------------------------------------------------------------------

/**
 * A new token for a live socket (PROTOCOL.md, "Token expiry and refresh"): it must name the same
 * user and device. Replied with `refreshed` (the socket now lives until the new `exp`) or an
 * `unauthorized` error (the socket keeps its old deadline).
 */
export const RefreshFrame = z.object({ t: z.literal('refresh'), rid: Rid.optional(), token: z.string().min(1).max(MAX_TOKEN_CHARS) });
export type RefreshFrame = z.infer<typeof RefreshFrame>;

// ---- server → client -------------------------------------------------------------------------

/** The socket's token expires at `exp` (Unix seconds): send `refresh` before then, or be closed with 4001. */
export const ReauthFrame = z.object({ t: z.literal('reauth'), exp: z.number().int() });
/** Reply to `refresh`: the socket's token now expires at `exp`. */
export const RefreshedFrame = z.object({ t: z.literal('refreshed'), rid: Rid.optional(), exp: z.number().int() });
export type ReauthFrame = z.infer<typeof ReauthFrame>;
export type RefreshedFrame = z.infer<typeof RefreshedFrame>;

// ---- HTTP bodies -----------------------------------------------------------------------------

/**
 * `POST /internal/users/:user/revoke-tokens` (signed operator call): the user's tokens issued
 * before `before` (Unix seconds; default now, never later than now) are refused.
 */
export const RevokeTokensRequest = z.object({ before: z.number().int().nonnegative().optional() }).strict();
export type RevokeTokensRequest = z.infer<typeof RevokeTokensRequest>;
