/** OTLP/gRPC: one unary LogsService/Export call per attempt, the status classified. */
import type * as Grpc from "@grpc/grpc-js";
import type * as GrpcExporterBase from "@opentelemetry/otlp-grpc-exporter-base";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { createRequire } from "node:module";
import { version } from "../version.ts";
import { deliveredOutcome, grpcOutcome, networkOutcome, type SendOutcome } from "./export-outcome.ts";
import { readPartialSuccess, type LogsSerializer, type OtlpTransport } from "./otlp-transport.ts";

const lazyRequire = createRequire(import.meta.url);

const EXPORT_PATH = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const identity = (bytes: Buffer) => bytes;

/**
 * grpc-js backs off reconnecting up to 120 s by default, failing every call meanwhile: after a
 * one-minute outage it kept failing for 17 s once the collector was back. A connection
 * attempt costs little, so the channel tries at least every 2 s; our own retry spaces the exports.
 */
const MAX_RECONNECT_BACKOFF_MILLIS = 2000;

export function createGrpcTransport(serializer: LogsSerializer): OtlpTransport {
  const grpc = lazyRequire("@grpc/grpc-js") as typeof Grpc;
  const { convertLegacyOtlpGrpcOptions } = lazyRequire("@opentelemetry/otlp-grpc-exporter-base") as typeof GrpcExporterBase;
  const config = convertLegacyOtlpGrpcOptions({}, "LOGS");
  const Client = grpc.makeGenericClientConstructor(
    {
      export: {
        path: EXPORT_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    "LogsExportService",
  );
  const client = new Client(config.url, config.credentials(), {
    "grpc.default_compression_algorithm": config.compression === "gzip" ? grpc.compressionAlgorithms.gzip : grpc.compressionAlgorithms.identity,
    "grpc.primary_user_agent": `microenforcer/${version}`,
    "grpc.initial_reconnect_backoff_ms": 250,
    "grpc.max_reconnect_backoff_ms": MAX_RECONNECT_BACKOFF_MILLIS,
  });
  const metadata = config.metadata();
  const call = client.export as unknown as (
    request: Buffer,
    metadata: Grpc.Metadata,
    options: Grpc.CallOptions,
    callback: (error: Grpc.ServiceError | null, response?: Buffer) => void,
  ) => void;

  return {
    send(records: ReadableLogRecord[]): Promise<SendOutcome> {
      return new Promise((resolve) => {
        try {
          const request = Buffer.from(serializer.serializeRequest(records) ?? new Uint8Array());
          call.call(client, request, metadata, { deadline: Date.now() + config.timeoutMillis }, (error, response) => {
            if (error) resolve(grpcOutcome(error.code, error.details));
            else resolve(deliveredOutcome(readPartialSuccess(serializer, response), records.length));
          });
        } catch (error) {
          resolve(networkOutcome(error as Error));
        }
      });
    },
    shutdown() {
      client.close();
    },
  };
}
