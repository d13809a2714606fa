/** Thin typed calls to the edge's HTTP API. Errors carry the server's code. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

/** A JSON call to the edge; a refusal is an HttpError with the server's code. */
export async function call<T>(url: string, init: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string>) } });
  const body = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
  if (!res.ok) throw new HttpError(res.status, body.error?.code ?? 'http_error', body.error?.message ?? `HTTP ${res.status}`);
  return body as T;
}

/** A development token (only while the edge runs with DEV_AUTH on). */
export async function devToken(baseUrl: string, user: string, device: string): Promise<string> {
  return (await call<{ token: string }>(`${baseUrl}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user, device }) })).token;
}

export interface Conversation {
  id: string;
  members: string[];
  direct?: boolean;
  /** Members who got it as a message request (consent): they have not accepted yet. */
  requests?: string[];
  /** Its home region (null with one region). */
  region?: string | null;
}

/** `region`: its home region, one of the deployment's (default: the region nearest the caller). */
export function createConversation(baseUrl: string, token: string, req: { members: string[]; title?: string; direct?: boolean; region?: string }): Promise<Conversation> {
  return call<Conversation>(`${baseUrl}/v1/conversations`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(req) });
}
