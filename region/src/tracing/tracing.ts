import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * The message path's spans in the region: `store` (the events request that stores a message and
 * queues its fan-out), `fanout` (its fan-out record) and `deliver` (the call that hands it to the
 * edge). Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then exported over OTLP/HTTP (JSON) to
 * `<endpoint>/v1/traces` in batches (OTEL_BSP_* settings apply). Only messages the edge traced
 * carry a context (`trace`, a W3C traceparent): the edge decides sampling, the region follows.
 */
export class Tracing {
  readonly enabled: boolean;
  private readonly tracer: Tracer;
  private readonly provider: BasicTracerProvider | null;
  private readonly propagator = new W3CTraceContextPropagator();

  constructor(opts: { endpoint: string | null; service: string }) {
    this.enabled = !!opts.endpoint;
    if (opts.endpoint) {
      const exporter = new OTLPTraceExporter({ url: `${opts.endpoint.replace(/\/+$/, '')}/v1/traces` });
      this.provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': opts.service }), spanProcessors: [new BatchSpanProcessor(exporter)] });
      this.tracer = this.provider.getTracer('switchboard-region');
    } else {
      this.provider = null;
      this.tracer = trace.getTracer('switchboard-region');
    }
  }

  /** The context a traceparent names (null without one, or with tracing off). */
  parent(traceparent: string | undefined): Context | null {
    if (!this.enabled || !traceparent) return null;
    const ctx = this.propagator.extract(ROOT_CONTEXT, { traceparent }, { get: (c, k) => c[k as 'traceparent'], keys: (c) => Object.keys(c) });
    return trace.getSpanContext(ctx) ? ctx : null;
  }

  /** A span under `parent`, or null when there is none to continue. */
  start(name: string, parent: Context | null, attributes: Record<string, string | number> = {}): Span | null {
    if (!parent) return null;
    return this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
  }

  /** A span under another span (null under none). */
  child(name: string, parent: Span | null, attributes: Record<string, string | number> = {}): Span | null {
    return parent ? this.tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, trace.setSpan(ROOT_CONTEXT, parent)) : null;
  }

  /** The traceparent of `span`, for what continues the trace elsewhere. */
  traceparent(span: Span): string {
    const carrier: Record<string, string> = {};
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => (c[k] = v) });
    return carrier.traceparent!;
  }

  /** Ends spans (each may be null), marking them failed with `err`. */
  end(spans: (Span | null)[], err?: unknown): void {
    for (const s of spans) {
      if (!s) continue;
      if (err !== undefined) s.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
      s.end();
    }
  }

  /** Exports what is buffered and stops (on shutdown). */
  async close(): Promise<void> {
    await this.provider?.shutdown();
  }
}
