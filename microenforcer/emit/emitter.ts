import { SeverityNumber } from "@opentelemetry/api";
import type { Resource } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor, type LogRecordProcessor } from "@opentelemetry/sdk-logs";
import type { SensorRecord, Severity } from "../records/record.ts";
import { OtlpDelivery, type DeliveryStats } from "./otlp-exporter.ts";
import { StdoutLogRecordExporter, type StdoutFormat } from "./stdout-exporter.ts";

export type ExporterChoice = "stdout" | "otlp" | "both";

export interface EmitterOptions {
  exporter: ExporterChoice;
  format: StdoutFormat;
  resource: Resource;
  out?: NodeJS.WritableStream;
  /** Where delivery warnings go. */
  err?: NodeJS.WritableStream;
  /**
   * Chooses the OTLP protocol and batch sizes. The OTLP exporters read their endpoint,
   * headers and timeout from process.env themselves: the SDK takes no other env.
   */
  env?: NodeJS.ProcessEnv;
  /** How long shutdown may wait for the last OTLP exports before giving up on them. */
  shutdownTimeoutMillis?: number;
}

export interface Emitter {
  /** Never throws and never waits: stdout is written now, OTLP is queued. */
  emit(record: SensorRecord): void;
  /** Resolves once queued records are exported or given up on; never rejects. */
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

export function createEmitter(options: EmitterOptions): Emitter {
  const env = options.env ?? process.env;
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  const processors: LogRecordProcessor[] = [];

  if (options.exporter !== "otlp") {
    const color = options.format === "pretty" && (out as { isTTY?: boolean }).isTTY === true && !env.NO_COLOR;
    processors.push(new SimpleLogRecordProcessor({ exporter: new StdoutLogRecordExporter({ out, format: options.format, color }) }));
  }
  const otlp =
    options.exporter === "stdout" ? undefined : new OtlpDelivery(env, (message) => err.write(`microenforcer: warning: ${message}\n`));
  if (otlp) processors.push(otlp.processor);

  const provider = new LoggerProvider({ resource: options.resource, processors });
  const logger = provider.getLogger("microenforcer");
  let shutdown: Promise<void> | undefined;

  return {
    emit(record) {
      logger.emit({
        eventName: record.eventName,
        severityNumber: SEVERITY_NUMBER[record.severity],
        severityText: record.severity,
        body: record.body,
        attributes: record.attributes,
        timestamp: record.timestamp,
        observedTimestamp: record.observedTimestamp,
      });
    },
    async forceFlush() {
      // The SDK rejects only when its flush timeout expires; the counters show what is left.
      await provider.forceFlush().catch(() => undefined);
    },
    shutdown() {
      shutdown ??= withDeadline(provider.shutdown(), options.shutdownTimeoutMillis ?? 5000).then(() => {
        const stats = otlp?.stats();
        if (stats && stats.failed + stats.dropped + stats.pending > 0) {
          err.write(
            `microenforcer: warning: OTLP delivery at shutdown: ${stats.exported} exported, ${stats.failed} failed, ` +
              `${stats.dropped} dropped, ${stats.pending} undelivered\n`,
          );
        }
      });
      return shutdown;
    },
    stats() {
      return otlp?.stats() ?? { exported: 0, failed: 0, dropped: 0, pending: 0 };
    },
  };
}

/** A backend that is away must not hold the sidecar past its termination grace period. */
function withDeadline(work: Promise<void>, millis: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, millis);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    work.then(done, done);
  });
}
