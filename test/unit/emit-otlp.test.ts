import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { ProtobufLogsSerializer } from "@opentelemetry/otlp-transformer";
import { createOtlpTransport } from "../../microenforcer/emit/emitter.ts";
import { batchOptions, otlpProtocol } from "../../microenforcer/emit/otlp-config.ts";
import { logRecord } from "./emit-fixtures.ts";

describe("emit/otlp-config", () => {
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

  describe("batchOptions", () => {
    it("bounds the queue by default", () => {
      assert.deepEqual(batchOptions({}), { maxQueueSize: 2048, maxExportBatchSize: 512, scheduledDelayMillis: 1000 });
    });

    it("reads the OTEL_BLRP_* variables and never lets a batch exceed the queue", () => {
      assert.deepEqual(
        batchOptions({ OTEL_BLRP_MAX_QUEUE_SIZE: "100", OTEL_BLRP_MAX_EXPORT_BATCH_SIZE: "512", OTEL_BLRP_SCHEDULE_DELAY: "200" }),
        { maxQueueSize: 100, maxExportBatchSize: 100, scheduledDelayMillis: 200 },
      );
    });

    it("rejects values that are not positive integers", () => {
      for (const value of ["0", "-1", "1.5", "lots"]) {
        assert.throws(() => batchOptions({ OTEL_BLRP_MAX_QUEUE_SIZE: value }), { message: `OTEL_BLRP_MAX_QUEUE_SIZE="${value}" must be a positive integer` });
      }
    });
  });
});

describe("emit/http-transport against a scripted OTLP/HTTP server", () => {
  const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, timeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT };
  let answer: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
  let requests: Array<{ url: string | undefined; headers: IncomingMessage["headers"]; body: Buffer }>;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ url: req.url, headers: req.headers, body });
      answer(req, res, body);
    });
  });

  before(async () => {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const address = server.address();
    assert.ok(address !== null && typeof address === "object");
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${address.port}`;
    process.env.OTEL_EXPORTER_OTLP_TIMEOUT = "2000";
  });
  beforeEach(() => (requests = []));
  after(() => {
    server.close();
    for (const [name, value] of [["OTEL_EXPORTER_OTLP_ENDPOINT", saved.endpoint], ["OTEL_EXPORTER_OTLP_TIMEOUT", saved.timeout]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  const records = [logRecord({ eventName: "microenforcer.process.exec" }), logRecord({ eventName: "microenforcer.process.exit" })];

  it("POSTs one protobuf request to /v1/logs and reads a partial success", async () => {
    answer = (_req, res) => {
      // ExportLogsServiceResponse{partial_success{rejected_log_records: 1, error_message: "too old"}}
      const partial = Buffer.concat([Buffer.from([0x08, 0x01, 0x12, 0x07]), Buffer.from("too old")]);
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end(Buffer.concat([Buffer.from([0x0a, partial.length]), partial]));
    };
    const transport = createOtlpTransport("http/protobuf");
    assert.deepEqual(await transport.send(records), { kind: "delivered", rejected: 1, message: "too old" });
    transport.shutdown();
    assert.equal(requests.length, 1);
    assert.equal(requests[0]?.url, "/v1/logs");
    assert.equal(requests[0]?.headers["content-type"], "application/x-protobuf");
    assert.deepEqual(requests[0]?.body, Buffer.from(ProtobufLogsSerializer.serializeRequest(records)!));
  });

  it("http/json: a JSON body, and a JSON partial success with int64 as a string", async () => {
    answer = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"partialSuccess":{"rejectedLogRecords":"2"}}');
    const transport = createOtlpTransport("http/json");
    assert.deepEqual(await transport.send(records), { kind: "delivered", rejected: 2 });
    transport.shutdown();
    assert.equal(requests[0]?.headers["content-type"], "application/json");
    assert.equal(JSON.parse(requests[0]!.body.toString()).resourceLogs[0].scopeLogs[0].logRecords.length, 2);
  });

  it("classifies the answers: 503 + Retry-After retries, 400 rejects, 413 asks for smaller batches", async () => {
    const transport = createOtlpTransport("http/protobuf");
    answer = (_req, res) => res.writeHead(503, { "retry-after": "7" }).end("overloaded");
    assert.deepEqual(await transport.send(records), { kind: "retry", reason: "HTTP 503: overloaded", afterMillis: 7000 });
    answer = (_req, res) => res.writeHead(400).end("bad record");
    assert.deepEqual(await transport.send(records), { kind: "rejected", reason: "HTTP 400: bad record" });
    answer = (_req, res) => res.writeHead(413).end();
    assert.deepEqual(await transport.send(records), { kind: "too-large", reason: "HTTP 413" });
    transport.shutdown();
  });

  it("an endpoint that never answers is a retry after OTEL_EXPORTER_OTLP_TIMEOUT, not a hang", async () => {
    answer = () => undefined;
    const transport = createOtlpTransport("http/protobuf");
    const started = performance.now();
    const outcome = await transport.send(records);
    transport.shutdown();
    assert.equal(outcome.kind, "retry");
    assert.ok(performance.now() - started >= 1900, "waited for the timeout");
  });
});

describe("emit transports with nothing listening", () => {
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  after(() => {
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  });

  for (const protocol of ["http/protobuf", "grpc"] as const) {
    it(`${protocol}: a refused connection is retryable`, async () => {
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:1";
      const transport = createOtlpTransport(protocol);
      const outcome = await transport.send([logRecord({})]);
      transport.shutdown();
      assert.equal(outcome.kind, "retry");
      assert.match(outcome.kind === "retry" ? outcome.reason : "", protocol === "grpc" ? /gRPC status 14/ : /ECONNREFUSED/);
    });
  }
});
