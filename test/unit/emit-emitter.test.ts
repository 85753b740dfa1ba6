import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createEmitter } from "../../microenforcer/emit/emitter.ts";
import { buildResource } from "../../microenforcer/emit/resource.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";

/** A stream that keeps what was written, like a pipe to the log router. */
function capture(isTTY = false): Writable & { text: string; isTTY: boolean } {
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      stream.text += chunk.toString();
      callback();
    },
  }) as Writable & { text: string; isTTY: boolean };
  stream.text = "";
  stream.isTTY = isTTY;
  return stream;
}

const resource = buildResource({ POD_NAME: "api-7f9c", POD_NAMESPACE: "payments" }, "0.1.0");

const exec: SensorRecord = {
  eventName: "microenforcer.process.exec",
  severity: "INFO",
  body: "exec /usr/bin/curl",
  timestamp: Date.parse("2026-03-01T12:00:00.123Z") + 0.456,
  observedTimestamp: Date.parse("2026-03-01T12:00:00.200Z"),
  attributes: { "process.pid": 42, "process.command_args": ["/usr/bin/curl", "-s"], "k8s.container.name": "app" },
};

// The OTLP exporters read their endpoint and timeout from process.env only.
const OTLP_ENV = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"];

describe("emit/emitter", () => {
  describe("stdout", () => {
    it("writes one JSON line per record as soon as it is emitted", () => {
      const out = capture();
      const emitter = createEmitter({ exporter: "stdout", format: "json", resource, out });
      emitter.emit(exec);
      emitter.emit({ ...exec, eventName: "microenforcer.policy.violation", severity: "ERROR", observedTimestamp: undefined });
      const lines = out.text.split("\n");
      assert.equal(lines.length, 3);
      assert.equal(lines[2], "");
      assert.deepEqual(JSON.parse(lines[0] ?? ""), {
        timestamp: "2026-03-01T12:00:00.123Z",
        observedTimestamp: "2026-03-01T12:00:00.200Z",
        severityNumber: 9,
        severityText: "INFO",
        eventName: "microenforcer.process.exec",
        body: "exec /usr/bin/curl",
        attributes: { ...exec.attributes, "log.record.uid": JSON.parse(lines[0] ?? "").attributes["log.record.uid"], "microenforcer.record.id": JSON.parse(lines[0] ?? "").attributes["log.record.uid"] },
        resource: { "service.name": "microenforcer", "service.version": "0.1.0", "k8s.pod.name": "api-7f9c", "k8s.namespace.name": "payments" },
      });
      const second = JSON.parse(lines[1] ?? "");
      assert.equal(second.severityNumber, 17);
      assert.equal(second.severityText, "ERROR");
      assert.equal(second.eventName, "microenforcer.policy.violation");
      assert.ok(Math.abs(Date.parse(second.observedTimestamp) - Date.now()) < 5000, "observed defaults to now");
    });

    it("gives every record a unique log.record.uid (and, for now, the same microenforcer.record.id) that sorts in emit order", () => {
      const out = capture();
      const emitter = createEmitter({ exporter: "stdout", format: "json", resource, out });
      for (let i = 0; i < 1000; i++) emitter.emit(exec);
      const ids = out.text.trim().split("\n").map((line) => JSON.parse(line).attributes["log.record.uid"] as string);
      assert.equal(new Set(ids).size, 1000);
      assert.deepEqual([...ids].sort(), ids);
      assert.match(ids[0]!, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    });

    it("maps every severity to its OTel number", () => {
      const out = capture();
      const emitter = createEmitter({ exporter: "stdout", format: "json", resource, out });
      for (const severity of ["DEBUG", "INFO", "WARN", "ERROR"] as const) emitter.emit({ ...exec, severity });
      const parsed = out.text.trim().split("\n").map((line) => JSON.parse(line));
      assert.deepEqual(
        parsed.map((record) => [record.severityText, record.severityNumber]),
        [["DEBUG", 5], ["INFO", 9], ["WARN", 13], ["ERROR", 17]],
      );
    });

    it("colours pretty lines on a TTY only, and not with NO_COLOR", () => {
      for (const [isTTY, env, coloured] of [
        [true, {}, true],
        [false, {}, false],
        [true, { NO_COLOR: "1" }, false],
      ] as const) {
        const out = capture(isTTY);
        createEmitter({ exporter: "stdout", format: "pretty", resource, out, env }).emit(exec);
        assert.equal(out.text.includes("\x1b["), coloured, JSON.stringify({ isTTY, env }));
        assert.match(out.text.replaceAll("\x1b", "").replaceAll(/\[\d+m/g, ""), /INFO {2}process\.exec +pid=42 container=app {2}exec \/usr\/bin\/curl\n$/);
      }
    });

    it("does not touch OTLP: an invalid protocol is ignored and the counters stay zero", async () => {
      const emitter = createEmitter({ exporter: "stdout", format: "json", resource, out: capture(), env: { OTEL_EXPORTER_OTLP_PROTOCOL: "carrier-pigeon" } });
      emitter.emit(exec);
      await emitter.shutdown();
      assert.deepEqual(emitter.stats(), { exported: 0, pending: 0, dropped: 0, rejected: 0 });
    });
  });

  describe("otlp", () => {
    const saved = Object.fromEntries(OTLP_ENV.map((name) => [name, process.env[name]]));
    afterEach(() => {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    });

    function pointAt(endpoint: string, timeoutMillis: number): void {
      for (const name of OTLP_ENV) delete process.env[name];
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
      process.env.OTEL_EXPORTER_OTLP_TIMEOUT = String(timeoutMillis);
    }

    it("throws a clear error for an invalid protocol, before anything runs", () => {
      assert.throws(
        () => createEmitter({ exporter: "both", format: "json", resource, out: capture(), env: { OTEL_EXPORTER_OTLP_PROTOCOL: "udp" } }),
        /OTEL_EXPORTER_OTLP_PROTOCOL="udp" is not a supported OTLP protocol; use one of: grpc, http\/protobuf, http\/json/,
      );
    });

    for (const protocol of ["http/protobuf", "http/json", "grpc"]) {
      it(`${protocol}: an unreachable endpoint neither throws nor blocks; records wait for it and the outage is warned about once`, async function () {
        this.timeout(10000);
        pointAt("http://127.0.0.1:1", 500);
        const out = capture();
        const err = capture();
        const emitter = createEmitter({ exporter: "both", format: "json", resource, out, err, env: { OTEL_EXPORTER_OTLP_PROTOCOL: protocol }, shutdownTimeoutMillis: 300 });

        const started = performance.now();
        for (let i = 0; i < 100; i++) emitter.emit(exec);
        assert.ok(performance.now() - started < 200, "emit is synchronous and cheap");
        assert.equal(out.text.split("\n").length, 101, "stdout is unaffected");

        await emitter.forceFlush();
        emitter.emit(exec);
        await emitter.forceFlush();
        assert.deepEqual(emitter.stats(), { exported: 0, pending: 101, dropped: 0, rejected: 0 });

        const shutdownStarted = performance.now();
        await emitter.shutdown();
        assert.ok(performance.now() - shutdownStarted < 2000);
        const warnings = err.text.trim().split("\n");
        assert.equal(warnings.length, 2, err.text);
        assert.match(warnings[0] ?? "", /^microenforcer: warning: OTLP export failed \((gRPC status 14: .*|.*ECONNREFUSED.*)\); records wait in the backlog and are retried with backoff\. Later failures are not printed\.$/);
        assert.equal(warnings[1], "microenforcer: warning: OTLP delivery at shutdown: 0 exported, 0 dropped, 0 rejected, 101 undelivered (no spool: lost)");
      });
    }

    it("without a spool, holds a bounded backlog in memory, then counts drops and says what was lost", async () => {
      pointAt("http://127.0.0.1:1", 500);
      const out = capture();
      const err = capture();
      const emitter = createEmitter({ exporter: "both", format: "json", resource, out, err, env: { OTEL_BLRP_MAX_QUEUE_SIZE: "10", OTEL_BLRP_SCHEDULE_DELAY: "60000" }, shutdownTimeoutMillis: 100 });
      // 10 leave as a batch, 10 wait in the queue, the queue spills into the backlog of 4 × 10; the rest are refused.
      for (let i = 0; i < 100; i++) emitter.emit(exec);
      assert.deepEqual(emitter.stats(), { exported: 0, pending: 40, dropped: 60, rejected: 0 });
      await emitter.shutdown();
      const warnings = err.text.trim().split("\n");
      assert.equal(warnings[0], "microenforcer: warning: 1 record(s) lost (memory_full: 40 records); a microenforcer.sensor.status record will say how many of which kind. Later losses are not printed.");
      // The report of what was lost reaches stdout at shutdown (and the backend, by a next start with a spool).
      const report = out.text.trim().split("\n").map((line) => JSON.parse(line)).at(-1);
      assert.equal(report.eventName, "microenforcer.sensor.status");
      assert.equal(report.attributes["microenforcer.loss.count"], 60);
      assert.equal(report.attributes["microenforcer.loss.by_event.process.exec"], 60);
    });

    it("with a spool, records wait on disk and a next start delivers them and says so", async () => {
      pointAt("http://127.0.0.1:1", 500);
      const dir = mkdtempSync(join(tmpdir(), "emitter-spool-"));
      try {
        const first = createEmitter({ exporter: "otlp", format: "json", resource, err: capture(), spool: { dir }, shutdownTimeoutMillis: 100 });
        for (let i = 0; i < 5; i++) first.emit(exec);
        await first.shutdown();
        assert.ok(readdirSync(dir).some((name) => name.endsWith(".seg")));
        const out = capture();
        const second = createEmitter({ exporter: "both", format: "json", resource, out, err: capture(), spool: { dir }, shutdownTimeoutMillis: 100 });
        assert.match(out.text, /"body":"5 record\(s\) spooled by a previous run are delivered first"/);
        assert.equal(second.stats().pending, 6);
        await second.shutdown();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("shutdown gives up on an endpoint that accepts but never answers, and says what was undelivered", async function () {
      const sockets = new Set<Socket>();
      const server = createServer((socket) => sockets.add(socket)).listen(0, "127.0.0.1");
      await once(server, "listening");
      const address = server.address();
      assert.ok(address !== null && typeof address === "object");
      try {
        pointAt(`http://127.0.0.1:${address.port}`, 1500);
        const err = capture();
        const emitter = createEmitter({ exporter: "otlp", format: "json", resource, err, shutdownTimeoutMillis: 300 });
        emitter.emit(exec);
        const started = performance.now();
        await emitter.shutdown();
        const took = performance.now() - started;
        assert.ok(took >= 250 && took < 1000, `shutdown took ${took} ms`);
        assert.deepEqual(emitter.stats(), { exported: 0, pending: 1, dropped: 0, rejected: 0 });
        assert.equal(err.text, "microenforcer: warning: OTLP delivery at shutdown: 0 exported, 0 dropped, 0 rejected, 1 undelivered (no spool: lost)\n");
      } finally {
        for (const socket of sockets) socket.destroy();
        server.close();
      }
    });
  });
});
