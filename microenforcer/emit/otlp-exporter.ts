import { createNoopMeter, type Attributes, type Counter, type Meter, type MeterProvider } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { OTLPLogExporter as GrpcLogExporter } from "@opentelemetry/exporter-logs-otlp-grpc";
import type { OTLPLogExporter as JsonLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import type { OTLPLogExporter as ProtobufLogExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import { createRequire } from "node:module";
import {
  BatchLogRecordProcessor,
  type LogRecordExporter,
  type LogRecordProcessor,
  type ReadWriteLogRecord,
  type ReadableLogRecord,
} from "@opentelemetry/sdk-logs";

export const OTLP_PROTOCOLS = ["grpc", "http/protobuf", "http/json"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** The signal-specific variable wins; http/protobuf is the spec's default. */
export function otlpProtocol(env: NodeJS.ProcessEnv): OtlpProtocol {
  for (const variable of ["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
    const value = env[variable]?.trim();
    if (!value) continue;
    if ((OTLP_PROTOCOLS as readonly string[]).includes(value)) return value as OtlpProtocol;
    throw new Error(`${variable}="${value}" is not a supported OTLP protocol; use one of: ${OTLP_PROTOCOLS.join(", ")}`);
  }
  return "http/protobuf";
}

/** Endpoint, headers, timeout, TLS and compression come from OTEL_EXPORTER_OTLP_* in process.env, read by the SDK. */
// Only the chosen protocol's exporter is loaded: grpc-js and protobufjs cost megabytes of
// resident memory in a sidecar that may never use them.
const require = createRequire(import.meta.url);

export function createOtlpExporter(protocol: OtlpProtocol): LogRecordExporter {
  switch (protocol) {
    case "grpc": {
      const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-grpc") as { OTLPLogExporter: typeof GrpcLogExporter };
      return new OTLPLogExporter();
    }
    case "http/protobuf": {
      const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-proto") as { OTLPLogExporter: typeof ProtobufLogExporter };
      return new OTLPLogExporter();
    }
    case "http/json": {
      const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-http") as { OTLPLogExporter: typeof JsonLogExporter };
      return new OTLPLogExporter();
    }
  }
}

/** The standard OTEL_BLRP_* variables; sdk-logs 3 no longer reads them itself. */
export function batchOptions(env: NodeJS.ProcessEnv) {
  const maxQueueSize = positiveInteger(env, "OTEL_BLRP_MAX_QUEUE_SIZE", 2048);
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(positiveInteger(env, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512), maxQueueSize),
    scheduledDelayMillis: positiveInteger(env, "OTEL_BLRP_SCHEDULE_DELAY", 1000),
    exportTimeoutMillis: positiveInteger(env, "OTEL_BLRP_EXPORT_TIMEOUT", 30000),
  };
}

function positiveInteger(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${variable}="${raw}" must be a positive integer`);
  return value;
}

export interface DeliveryStats {
  /** Accepted by the collector. */
  exported: number;
  /** Given up on by the exporter after its retries (http) or at once (grpc). */
  failed: number;
  /** Refused because the bounded queue was full. */
  dropped: number;
  /** Emitted but not yet exported, failed or dropped. */
  pending: number;
}

/**
 * OTLP export through a bounded BatchLogRecordProcessor, with every record accounted
 * for: export results are counted where the exporter reports them, queue-full drops
 * where the SDK reports them (its self-observability counter). Each kind of loss is
 * reported once through `warn`; after that only the counters move.
 */
export class OtlpDelivery {
  readonly processor: LogRecordProcessor;
  readonly #counts = { accepted: 0, exported: 0, failed: 0, dropped: 0 };
  readonly #warn: (message: string) => void;
  readonly #warned = new Set<"failed" | "dropped">();

  constructor(env: NodeJS.ProcessEnv, warn: (message: string) => void) {
    this.#warn = warn;
    const protocol = otlpProtocol(env);
    const batch = new BatchLogRecordProcessor({
      ...batchOptions(env),
      exporter: this.#countResults(createOtlpExporter(protocol), protocol),
      selfObsMeterProvider: dropCountingMeterProvider((count) => this.#lost("dropped", count, "the export queue is full")),
    });
    this.processor = {
      onEmit: (record: ReadWriteLogRecord) => {
        this.#counts.accepted++;
        batch.onEmit(record);
      },
      forceFlush: () => batch.forceFlush(),
      shutdown: () => batch.shutdown(),
    };
  }

  stats(): DeliveryStats {
    const { accepted, exported, failed, dropped } = this.#counts;
    return { exported, failed, dropped, pending: accepted - exported - failed - dropped };
  }

  #countResults(exporter: LogRecordExporter, protocol: OtlpProtocol): LogRecordExporter {
    return {
      export: (records: ReadableLogRecord[], resultCallback: (result: ExportResult) => void) => {
        exporter.export(records, (result) => {
          if (result.code === ExportResultCode.SUCCESS) this.#counts.exported += records.length;
          else this.#lost("failed", records.length, `OTLP ${protocol} export failed: ${result.error?.message ?? "unknown error"}`);
          resultCallback(result);
        });
      },
      forceFlush: () => exporter.forceFlush(),
      shutdown: () => exporter.shutdown(),
    };
  }

  #lost(kind: "failed" | "dropped", count: number, reason: string): void {
    this.#counts[kind] += count;
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    this.#warn(`${reason}; ${count} log record(s) ${kind}. Further losses are counted, not printed.`);
  }
}

/** The batch processor signals drops only on this counter (semconv SDK self-observability). */
const PROCESSED_COUNTER = "otel.sdk.processor.log.processed";

function dropCountingMeterProvider(onDrop: (count: number) => void): MeterProvider {
  const noop = createNoopMeter();
  const processed = {
    add(count: number, attributes?: Attributes) {
      if (attributes?.["error.type"] === "queue_full") onDrop(count);
    },
  };
  // Everything else stays a no-op: we want the signal, not a metrics pipeline.
  const meter: Meter = Object.create(noop);
  meter.createCounter = <A extends Attributes>(name: string) =>
    (name === PROCESSED_COUNTER ? processed : noop.createCounter(name)) as Counter<A>;
  return { getMeter: () => meter };
}
