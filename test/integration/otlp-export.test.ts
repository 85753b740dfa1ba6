import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createEmitter, type Emitter } from "../../microenforcer/emit/emitter.ts";
import { OTLP_PROTOCOLS, type OtlpProtocol } from "../../microenforcer/emit/otlp-config.ts";
import { buildResource } from "../../microenforcer/emit/resource.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import {
  buildCollector,
  freePorts,
  startCollector,
  type CollectedLogRecord,
  type Collector,
} from "../infra/otelcol/collector.ts";

// The OTLP exporters read their endpoint from process.env only, so the tests set it there.
const OTLP_ENV = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"];

function pointAt(protocol: OtlpProtocol, endpoint: string, timeoutMillis?: number): void {
  for (const name of OTLP_ENV) delete process.env[name];
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = protocol;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
  if (timeoutMillis !== undefined) process.env.OTEL_EXPORTER_OTLP_TIMEOUT = String(timeoutMillis);
}

const exec: SensorRecord = {
  eventName: "microenforcer.process.exec",
  severity: "INFO",
  body: "exec /usr/bin/curl",
  timestamp: Date.parse("2026-03-01T12:00:00.123Z"),
  attributes: {
    "process.pid": 42,
    "process.parent_pid": 7,
    "process.executable.name": "curl",
    "process.executable.path": "/usr/bin/curl",
    "process.command": "curl",
    "process.args_count": 3,
    "process.command_args": ["curl", "-s", "https://example.com"],
    "process.interactive": true,
    "process.session_leader.pid": 7,
    "process.working_directory": "/srv",
    "k8s.container.name": "app",
    "microenforcer.exec.origin": "exec-session",
    // Not a scalar: the collector must carry it as a list of maps.
    "microenforcer.process.ancestors": [
      { pid: 7, executable: "/bin/bash" },
      { pid: 1, executable: "/usr/sbin/nginx" },
    ],
  },
};

const violation: SensorRecord = {
  eventName: "microenforcer.policy.violation",
  severity: "WARN",
  body: "blocked executable /usr/bin/nc",
  timestamp: Date.parse("2026-03-01T12:00:01Z"),
  attributes: {
    "process.pid": 43,
    "microenforcer.policy.name": "forensics-all",
    "microenforcer.control": "executables",
    "microenforcer.action": "audit",
    "security_rule.name": "**/nc",
    "security_rule.category": "executables",
    "security_rule.ruleset.name": "forensics-all",
    "security_rule.uuid": "0b6f2a34-8d1e-5c3f-9a47-1e2d3c4b5a69",
    "security_rule.version": "3",
  },
};

function emitterFor(pod: string): Emitter {
  const resource = buildResource({ POD_NAME: pod, POD_NAMESPACE: "payments", POD_UID: "uid-1", NODE_NAME: "node-a" }, "0.1.0");
  // Delivery warnings are expected in the outage tests; the counters are what we check.
  const err = new Writable({ write: (_chunk, _encoding, done) => done() });
  return createEmitter({ exporter: "otlp", format: "json", resource, err });
}

const fromPod = (pod: string) => (record: CollectedLogRecord) => record.resource["k8s.pod.name"] === pod;

/** Every record carries a unique, sortable id; the rest is what was emitted. */
function withoutId(attributes: Record<string, unknown>): Record<string, unknown> {
  const { "log.record.uid": id, "microenforcer.record.id": legacy, ...rest } = attributes;
  assert.match(String(id), /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.equal(legacy, id);
  return rest;
}

async function until(check: () => boolean, timeoutMillis: number): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!check() && Date.now() < deadline) await sleep(50);
}

describe("OTLP export to a real OpenTelemetry Collector", function () {
  let binary: string;
  let collector: Collector;
  const savedEnv = Object.fromEntries(OTLP_ENV.map((name) => [name, process.env[name]]));

  before(async function () {
    this.timeout(30 * 60 * 1000); // a cold build fetches and compiles the collector's modules
    binary = await buildCollector();
    collector = await startCollector(binary);
  });

  after(async () => {
    await collector?.stop();
  });

  afterEach(() => {
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  for (const protocol of OTLP_PROTOCOLS) {
    it(`delivers records over ${protocol}`, async () => {
      pointAt(protocol, collector.endpoint(protocol));
      const pod = `pod-${protocol.replace("/", "-")}`;
      const emitter = emitterFor(pod);
      emitter.emit(exec);
      emitter.emit(violation);
      await emitter.forceFlush();
      assert.deepEqual(emitter.stats(), { exported: 2, pending: 0, dropped: 0, rejected: 0 });
      await emitter.shutdown();

      const received = await collector.waitForLogRecords(2, fromPod(pod));
      assert.equal(received.length, 2);
      const [first, second] = received;
      // When it was seen is the emit time; when it happened is the record's own timestamp.
      const { observedTimeMs, ...rest } = first!;
      assert.ok(observedTimeMs !== undefined && Math.abs(observedTimeMs - Date.now()) < 60_000);
      assert.deepEqual({ ...rest, attributes: withoutId(first!.attributes) }, {
        eventName: "microenforcer.process.exec",
        timeMs: exec.timestamp,
        body: "exec /usr/bin/curl",
        severityNumber: 9,
        severityText: "INFO",
        attributes: exec.attributes,
        resource: {
          "service.name": "microenforcer",
          "service.version": "0.1.0",
          "k8s.pod.name": pod,
          "k8s.namespace.name": "payments",
          "k8s.pod.uid": "uid-1",
          "k8s.node.name": "node-a",
        },
      });
      assert.equal(second?.eventName, "microenforcer.policy.violation");
      assert.equal(second?.severityNumber, 13);
      assert.equal(second?.severityText, "WARN");
      assert.deepEqual(withoutId(second!.attributes), violation.attributes);
    });
  }

  for (const protocol of ["http/protobuf", "grpc"] as const) {
    it(`${protocol}: a refused export is kept and retried, so a collector starting late still gets the record`, async function () {
      this.timeout(30000);
      const ports = await freePorts();
      pointAt(protocol, `http://127.0.0.1:${protocol === "grpc" ? ports.grpc : ports.http}`);
      const pod = `pod-late-${protocol.replace("/", "-")}`;
      const emitter = emitterFor(pod);
      emitter.emit(exec);
      await emitter.forceFlush(); // the attempt is refused; the record waits in the backlog
      assert.deepEqual(emitter.stats(), { exported: 0, pending: 1, dropped: 0, rejected: 0 });

      const late = await startCollector(binary, ports);
      try {
        await until(() => emitter.stats().exported === 1, 20000);
        assert.deepEqual(emitter.stats(), { exported: 1, pending: 0, dropped: 0, rejected: 0 });
        const received = await late.waitForLogRecords(1, fromPod(pod));
        assert.deepEqual(
          received.map((record) => record.eventName),
          ["microenforcer.process.exec"],
        );
      } finally {
        await emitter.shutdown();
        await late.stop();
      }
    });
  }
});
