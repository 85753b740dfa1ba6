import { SeverityNumber } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import { LoggerProvider, type LogRecordProcessor } from "@opentelemetry/sdk-logs";
import type * as Transformer from "@opentelemetry/otlp-transformer";
import { createRequire } from "node:module";
import type { SensorRecord, Severity } from "../records/record.ts";
import type { ExporterChoice } from "../sidecar-contract.ts";
import { spoolRecoveredRecord, spoolUnusableRecord } from "../records/sensor-records.ts";
import { DEFAULT_SPOOL_MAX_BYTES, Spool } from "../spool/spool.ts";
import { MemoryBacklog, type Backlog } from "../spool/backlog.ts";
import { defaultRetryPolicy, type RetryPolicy } from "./backoff.ts";
import { Delivery, type DeliveryStats } from "./delivery.ts";
import { LossStore } from "./loss-store.ts";
import { createGrpcTransport } from "./grpc-transport.ts";
import { createHttpTransport } from "./http-transport.ts";
import { batchOptions, otlpProtocol, type OtlpProtocol } from "./otlp-config.ts";
import type { OtlpTransport } from "./otlp-transport.ts";
import { RecordIds, recordIdAttributes } from "./record-id.ts";
import { StdoutLogRecordProcessor, type StdoutFormat } from "./stdout-processor.ts";

export interface SpoolSettings {
  /** The sidecar's emptyDir (SPOOL_DIR_ENV). */
  dir: string;
  /** Default DEFAULT_SPOOL_MAX_BYTES. */
  maxBytes?: number;
  segmentBytes?: number;
}

export interface EmitterOptions {
  exporter: ExporterChoice;
  format: StdoutFormat;
  resource: Resource;
  out?: NodeJS.WritableStream;
  /** Where delivery warnings go. */
  err?: NodeJS.WritableStream;
  /**
   * Chooses the OTLP protocol and batch sizes. The OTLP transports read their endpoint,
   * headers and timeout from process.env themselves, through the SDK's configuration.
   */
  env?: NodeJS.ProcessEnv;
  /** Where OTLP records wait while the backend is away; without it, a bounded memory backlog. */
  spool?: SpoolSettings;
  retry?: RetryPolicy;
  /** How long shutdown keeps trying to deliver before it leaves the rest in the spool. */
  shutdownTimeoutMillis?: number;
}

export interface Emitter {
  /** Never throws and never waits: stdout is written now, OTLP is queued. */
  emit(record: SensorRecord): void;
  /** Resolves once queued records are exported, or safe in the backlog after a failed attempt; never rejects. */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
  /** OTLP delivery counters (all zero with the stdout exporter alone). */
  stats(): DeliveryStats;
}

const SEVERITY_NUMBER: Readonly<Record<Severity, SeverityNumber>> = {
  DEBUG: SeverityNumber.DEBUG,
  INFO: SeverityNumber.INFO,
  WARN: SeverityNumber.WARN,
  ERROR: SeverityNumber.ERROR,
};

/** Without a spool, the backlog holds this many memory queues' worth of records. */
const MEMORY_BACKLOG_QUEUES = 4;

export function createEmitter(options: EmitterOptions): Emitter {
  const env = options.env ?? process.env;
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const warn = (message: string) => err.write(`microenforcer: warning: ${message}\n`);
  const ids = new RecordIds();
  const processors: LogRecordProcessor[] = [];
  /** What the sensor should say about its own delivery once records can be emitted. */
  const notices: SensorRecord[] = [];
  let delivery: Delivery | undefined;

  const emit = (record: SensorRecord): void => {
    logger.emit({
      eventName: record.eventName,
      severityNumber: SEVERITY_NUMBER[record.severity],
      severityText: record.severity,
      body: record.body,
      attributes: { ...record.attributes, ...recordIdAttributes(ids.next()) },
      timestamp: record.timestamp,
      observedTimestamp: record.observedTimestamp,
    });
  };

  if (options.exporter !== "stdout") {
    const batch = batchOptions(env);
    const { backlog, problem } = openBacklog(options.spool, batch.maxQueueSize * MEMORY_BACKLOG_QUEUES);
    delivery = new Delivery({
      transport: createOtlpTransport(otlpProtocol(env)),
      backlog,
      lossStore: backlog instanceof Spool ? new LossStore(options.spool!.dir, warn) : undefined,
      batch,
      retry: options.retry ?? defaultRetryPolicy,
      shutdownTimeoutMillis: options.shutdownTimeoutMillis ?? 5000,
      report: emit,
      warn,
    });
    if (problem !== undefined) {
      warn(problem);
      notices.push(spoolUnusableRecord(problem, options.spool?.dir ?? ""));
    }
    if (backlog instanceof Spool) {
      if (backlog.recovered.torn > 0) delivery.recordLoss("corrupt", backlog.recovered.torn, "torn by a crash");
      if (backlog.recovered.records > 0) notices.push(spoolRecoveredRecord(backlog.recovered.records));
    }
    // First, so that a record on stdout is already in the spool when the backend is away.
    processors.push(delivery);
  }
  if (options.exporter !== "otlp") {
    const color = options.format === "pretty" && (out as { isTTY?: boolean }).isTTY === true && !env.NO_COLOR;
    processors.push(new StdoutLogRecordProcessor({ out, format: options.format, color }));
  }

  const provider = new LoggerProvider({ resource: options.resource, processors });
  const logger = provider.getLogger("microenforcer");
  for (const notice of notices) emit(notice);
  let shutdown: Promise<void> | undefined;

  return {
    emit,
    async forceFlush() {
      await provider.forceFlush().catch(() => undefined);
    },
    shutdown() {
      shutdown ??= (async () => {
        // Delivery first: its last loss reports still reach stdout.
        await delivery?.shutdown();
        await provider.shutdown().catch(() => undefined);
        const stats = delivery?.stats();
        if (stats && stats.dropped + stats.rejected + stats.pending > 0) {
          const where = options.spool === undefined ? "undelivered (no spool: lost)" : "left in the spool for the next start";
          warn(`OTLP delivery at shutdown: ${stats.exported} exported, ${stats.dropped} dropped, ${stats.rejected} rejected, ${stats.pending} ${where}`);
        }
      })();
      return shutdown;
    },
    stats() {
      return delivery?.stats() ?? { exported: 0, pending: 0, dropped: 0, rejected: 0 };
    },
  };
}

/** The spool when it can be opened; else memory, and the reason why. */
function openBacklog(spool: SpoolSettings | undefined, memoryCapacity: number): { backlog: Backlog; problem?: string } {
  if (spool === undefined) return { backlog: new MemoryBacklog(memoryCapacity) };
  try {
    return { backlog: new Spool({ dir: spool.dir, maxBytes: spool.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES, segmentBytes: spool.segmentBytes }) };
  } catch (error) {
    return {
      backlog: new MemoryBacklog(memoryCapacity),
      problem: `cannot use the spool directory ${spool.dir} (${(error as Error).message}); records wait in memory only (${memoryCapacity} at most)`,
    };
  }
}

// The OTLP packages are loaded on demand (their CommonJS builds): protobufjs and grpc-js cost
// megabytes of resident memory in a sidecar that may only print to stdout.
const lazyRequire = createRequire(import.meta.url);

export function createOtlpTransport(protocol: OtlpProtocol): OtlpTransport {
  const { JsonLogsSerializer, ProtobufLogsSerializer } = lazyRequire("@opentelemetry/otlp-transformer") as typeof Transformer;
  switch (protocol) {
    case "grpc":
      return createGrpcTransport(ProtobufLogsSerializer);
    case "http/protobuf":
      return createHttpTransport(ProtobufLogsSerializer, "application/x-protobuf");
    case "http/json":
      return createHttpTransport(JsonLogsSerializer, "application/json");
  }
}
