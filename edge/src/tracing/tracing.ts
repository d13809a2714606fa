import { log, errorFields } from '../log.ts';

/**
 * The edge's spans of the message path, exported over OTLP/HTTP (JSON) when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set (off by default): `send` (the gateway, from the device's frame
 * to its `sent`) and `sequence` under it (the ConversationDO storing it). The Workers runtime has no
 * OpenTelemetry SDK, so spans are kept as plain records and posted in batches from the object that
 * made them. The outbox event carries the `sequence` span's W3C traceparent to the region, whose
 * `store`, `fanout` and `deliver` spans continue the trace (region/src/tracing). The gateway decides
 * sampling (OTEL_TRACES_SAMPLE_RATIO); everything downstream follows the message's context.
 */

/** Variables this module reads (a subset of Env). */
export interface TracingEnv {
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  OTEL_TRACES_SAMPLE_RATIO?: string;
}

export interface TracingConfig {
  /** The collector's base URL; spans go to `<it>/v1/traces`. Empty: no tracing. */
  otelExporterOtlpEndpoint: string;
  /** Share of sends traced, 0 to 1. Default 1 (when an endpoint is set). */
  otelTracesSampleRatio: number;
}

export function tracingConfig(env: TracingEnv, ConfigError: new (msg: string) => Error): TracingConfig {
  const raw = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() ?? '';
  if (raw) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(raw).protocol);
    } catch {}
    if (!ok) throw new ConfigError(`OTEL_EXPORTER_OTLP_ENDPOINT: expected an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  const ratioRaw = env.OTEL_TRACES_SAMPLE_RATIO?.trim();
  const ratio = ratioRaw ? Number(ratioRaw) : 1;
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new ConfigError(`OTEL_TRACES_SAMPLE_RATIO: expected a number from 0 to 1, got ${JSON.stringify(ratioRaw)}`);
  return { otelExporterOtlpEndpoint: raw.replace(/\/+$/, ''), otelTracesSampleRatio: ratio };
}

/** A span in progress: its trace, its id, its parent's, its start (ms). */
export interface SpanContext {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  start: number;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

function hex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export function traceparent(span: SpanContext): string {
  return `00-${span.traceId}-${span.spanId}-01`;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
  status?: { code: number; message?: string };
}

const MAX_BUFFERED = 2_000;
const FLUSH_MS = 1_000;

/** One object's tracer: starts spans, buffers finished ones and posts them in batches. */
export class EdgeTracer {
  private buffer: OtlpSpan[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly cfg: TracingConfig,
    private readonly service: string,
  ) {}

  get enabled(): boolean {
    return this.cfg.otelExporterOtlpEndpoint !== '';
  }

  /** A new trace's root span, or null when tracing is off or this one is not sampled. */
  root(): SpanContext | null {
    if (!this.enabled || Math.random() >= this.cfg.otelTracesSampleRatio) return null;
    return { traceId: hex(16), spanId: hex(8), start: Date.now() };
  }

  /** A span under the one a traceparent names (null: none, or tracing off). */
  childOf(parent: string | undefined): SpanContext | null {
    if (!this.enabled || !parent) return null;
    const m = TRACEPARENT.exec(parent);
    if (!m || m[1] === '0'.repeat(32)) return null;
    return { traceId: m[1]!, spanId: hex(8), parentSpanId: m[2]!, start: Date.now() };
  }

  /** Ends a span and queues it for export. */
  end(span: SpanContext | null, name: string, attributes: Record<string, string | number> = {}, error?: string): void {
    if (!span || !this.enabled) return;
    if (this.buffer.length >= MAX_BUFFERED) return; // the collector is behind: drop rather than grow
    this.buffer.push({
      traceId: span.traceId,
      spanId: span.spanId,
      ...(span.parentSpanId ? { parentSpanId: span.parentSpanId } : {}),
      name,
      kind: 1,
      startTimeUnixNano: `${span.start}000000`,
      endTimeUnixNano: `${Math.max(span.start, Date.now())}000000`,
      attributes: Object.entries(attributes).map(([key, v]) => ({ key, value: typeof v === 'number' ? { intValue: String(v) } : { stringValue: v } })),
      ...(error ? { status: { code: 2, message: error } } : {}),
    });
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Posts what is buffered (a failure is logged; spans are not retried). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const spans = this.buffer.splice(0);
    if (spans.length === 0) return;
    const body = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: this.service } }] },
          scopeSpans: [{ scope: { name: 'switchboard-edge' }, spans }],
        },
      ],
    };
    try {
      const res = await fetch(`${this.cfg.otelExporterOtlpEndpoint}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      if (!res.ok) log('warn', 'span export refused', { status: res.status, spans: spans.length });
      await res.body?.cancel();
    } catch (err) {
      log('warn', 'span export failed', { spans: spans.length, ...errorFields(err) });
    }
  }
}
