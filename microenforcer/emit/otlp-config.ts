/** What the standard OTEL_* variables say about OTLP export, beyond what the SDK's own configuration reads. */

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

export interface BatchOptions {
  /** Records held in memory before the rest spills to the spool. */
  maxQueueSize: number;
  maxExportBatchSize: number;
  /** How long a record may wait in memory for a batch to fill. */
  scheduledDelayMillis: number;
}

/** The standard OTEL_BLRP_* variables, which keep their meaning for our own queue. */
export function batchOptions(env: NodeJS.ProcessEnv): BatchOptions {
  const maxQueueSize = positiveInteger(env, "OTEL_BLRP_MAX_QUEUE_SIZE", 2048);
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(positiveInteger(env, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512), maxQueueSize),
    scheduledDelayMillis: positiveInteger(env, "OTEL_BLRP_SCHEDULE_DELAY", 1000),
  };
}

export function positiveInteger(env: NodeJS.ProcessEnv, variable: string, fallback: number): number {
  const raw = env[variable]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${variable}="${raw}" must be a positive integer`);
  return value;
}
