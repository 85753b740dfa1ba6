import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { batchOptions, createOtlpExporter, otlpProtocol } from "../../microenforcer/emit/otlp-exporter.ts";

describe("emit/otlp-exporter", () => {
  describe("otlpProtocol", () => {
    it("defaults to http/protobuf, as the spec says", () => {
      assert.equal(otlpProtocol({}), "http/protobuf");
      assert.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: " " }), "http/protobuf");
    });

    it("reads OTEL_EXPORTER_OTLP_PROTOCOL", () => {
      assert.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }), "grpc");
      assert.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" }), "http/json");
    });

    it("prefers the logs-specific variable, and falls back when it is empty", () => {
      assert.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "http/json", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }), "http/json");
      assert.equal(otlpProtocol({ OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }), "grpc");
    });

    it("rejects an unknown value naming the variable and the allowed values", () => {
      assert.throws(
        () => otlpProtocol({ OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: "http", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }),
        { message: 'OTEL_EXPORTER_OTLP_LOGS_PROTOCOL="http" is not a supported OTLP protocol; use one of: grpc, http/protobuf, http/json' },
      );
      assert.throws(() => otlpProtocol({ OTEL_EXPORTER_OTLP_PROTOCOL: "GRPC" }), /^Error: OTEL_EXPORTER_OTLP_PROTOCOL="GRPC"/);
    });
  });

  describe("createOtlpExporter", () => {
    it("uses the SDK exporter of each protocol", async () => {
      // Loaded the way the emitter loads them, on demand: the packages' CommonJS builds.
      const sdk = (name: string) => (createRequire(import.meta.url)(name) as { OTLPLogExporter: new () => unknown }).OTLPLogExporter;
      for (const [protocol, type] of [
        ["grpc", sdk("@opentelemetry/exporter-logs-otlp-grpc")],
        ["http/protobuf", sdk("@opentelemetry/exporter-logs-otlp-proto")],
        ["http/json", sdk("@opentelemetry/exporter-logs-otlp-http")],
      ] as const) {
        const exporter = createOtlpExporter(protocol);
        assert.ok(exporter instanceof type, protocol);
        await exporter.shutdown();
      }
    });
  });

  describe("batchOptions", () => {
    it("bounds the queue by default", () => {
      assert.deepEqual(batchOptions({}), { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 1000, exportTimeoutMillis: 30000 });
    });

    it("reads the OTEL_BLRP_* variables and never lets a batch exceed the queue", () => {
      assert.deepEqual(
        batchOptions({ OTEL_BLRP_MAX_QUEUE_SIZE: "100", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: "512", OTEL_BLRP_SCHEDULE_DELAY: "200", OTEL_BLRP_EXPORT_TIMEOUT: "5000" }),
        { maxQueueSize: 100, maxExportBatchSize: 100, scheduledDelayMillis: 200, exportTimeoutMillis: 5000 },
      );
    });

    it("rejects values that are not positive integers", () => {
      for (const value of ["0", "-1", "1.5", "lots"]) {
        assert.throws(() => batchOptions({ OTEL_BLRP_MAX_QUEUE_SIZE: value }), { message: `OTEL_BLRP_MAX_QUEUE_SIZE="${value}" must be a positive integer` });
      }
    });
  });
});
