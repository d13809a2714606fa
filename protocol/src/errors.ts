/**
 * Reply error codes, carried in `{"t":"error","rid","code","message"}` frames and HTTP error bodies
 * `{"error":{"code","message"}}`. `retry` says whether the same request may succeed later unchanged.
 */
export const ERRORS = {
  bad_json: { status: 400, retry: false, message: 'frame is not valid JSON' },
  invalid_frame: { status: 400, retry: false, message: 'frame does not match its schema' },
  unknown_type: { status: 400, retry: false, message: 'unknown frame type' },
  too_large: { status: 413, retry: false, message: 'frame or body exceeds the size limit' },
  unauthorized: { status: 401, retry: false, message: 'missing, expired or invalid token' },
  forbidden: { status: 403, retry: false, message: 'not allowed' },
  not_member: { status: 403, retry: false, message: 'not a member of this conversation' },
  not_found: { status: 404, retry: false, message: 'no such resource' },
  invalid_key_package: { status: 400, retry: false, message: 'a KeyPackage failed its check' },
  too_many: { status: 409, retry: false, message: 'over the number this resource may hold' },
  conflict: { status: 409, retry: false, message: 'conflicts with the current state' },
  blocked: { status: 403, retry: false, message: 'a block between you and this user stops it' },
  request_pending: { status: 403, retry: false, message: 'the message request has not been accepted yet' },
  not_admin: { status: 403, retry: false, message: 'only an owner or admin may change membership' },
  group_full: { status: 409, retry: false, message: 'the group is at its member limit' },
  stale_epoch: { status: 409, retry: false, message: 'the MLS message is not at the conversation’s current epoch: catch up, then encrypt again' },
  rekey_required: { status: 423, retry: true, message: 'the conversation is rotating its keys after a membership change; send again after the commit' },
  rate_limited: { status: 429, retry: true, message: 'too many requests' },
  unavailable: { status: 503, retry: true, message: 'a dependency is unavailable; retry later' },
  internal: { status: 500, retry: true, message: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(ERRORS, s);
}

/** A typed, client-safe error: its message is shown to clients, so never put internals in it. */
export class ProtocolError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message?: string) {
    super(message ?? ERRORS[code].message);
    this.name = 'ProtocolError';
    this.code = code;
  }
  get status(): number {
    return ERRORS[this.code].status;
  }
}
