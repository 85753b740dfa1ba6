/**
 * One measured sender for `npm run bench:export`, run as its own process so that its CPU
 * time and peak RSS are its own: `node bench/export-sender.ts PIPELINE LOAD SECONDS`.
 *
 * PIPELINE: `microenforcer` (our emitter: record ids, memory queue, spool, own transports)
 * or `sdk` (the baseline: the SDK's BatchLogRecordProcessor and OTLP exporter, nothing else).
 * LOAD: `max` (as fast as the pipeline delivers, never more than 2 000 records ahead, so
 * nothing spills) or a rate in records/s (open loop: what the pipeline cannot take waits in
 * the spool, or is dropped by the SDK's queue).
 * The OTLP endpoint and protocol come from OTEL_EXPORTER_OTLP_*; one JSON line of results
 * goes to stdout.
 */
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter, type ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createEmitter } from "../microenforcer/emit/emitter.ts";
import { otlpProtocol } from "../microenforcer/emit/otlp-config.ts";
import type { SensorRecord } from "../microenforcer/records/record.ts";

const [pipeline = "microenforcer", load = "max", secondsText = "10"] = process.argv.slice(2);
const seconds = Number(secondsText);
const AHEAD = 2000;
const resource = resourceFromAttributes({ "service.name": "microenforcer", "service.version": "0.1.0", "k8s.pod.name": `bench-${pipeline}`, "k8s.namespace.name": "bench" });

/** A typical exec record: what the sensor emits most. */
function record(n: number): SensorRecord {
  const pid = 1000 + (n % 30000);
  return {
    eventName: "microenforcer.process.exec",
    severity: "INFO",
    body: `exec /usr/bin/curl (pid ${pid}) in container app`,
    timestamp: Date.now(),
    observedTimestamp: Date.now(),
    attributes: {
      "process.pid": pid,
      "process.parent_pid": 1,
      "process.executable.name": "curl",
      "process.executable.path": "/usr/bin/curl",
      "process.command_line": `curl -s https://api.example.test/v1/items/${n}`,
      "process.command_args": ["curl", "-s", `https://api.example.test/v1/items/${n}`],
      "process.user.id": 1000,
      "process.real_user.id": 1000,
      "process.creation.time": new Date().toISOString(),
      "microenforcer.process.comm": "curl",
      "microenforcer.exec.origin": "child",
      "k8s.container.name": "app",
      "microenforcer.sensor.detection": "trigger",
    },
  };
}

interface Sender {
  emit(record: SensorRecord): void;
  delivered(): number;
  close(): Promise<void>;
}

function microenforcer(): Sender {
  const dir = mkdtempSync(join(tmpdir(), "bench-spool-"));
  const emitter = createEmitter({ exporter: "otlp", format: "json", resource, spool: { dir } });
  return {
    emit: (r) => emitter.emit(r),
    delivered: () => emitter.stats().exported,
    async close() {
      await emitter.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function sdk(): Sender {
  const require = createRequire(import.meta.url);
  const module = otlpProtocol(process.env) === "grpc" ? "@opentelemetry/exporter-logs-otlp-grpc" : "@opentelemetry/exporter-logs-otlp-proto";
  const { OTLPLogExporter } = require(module) as { OTLPLogExporter: new () => LogRecordExporter };
  const inner = new OTLPLogExporter();
  let delivered = 0;
  const counting: LogRecordExporter = {
    export(records: ReadableLogRecord[], done: (result: ExportResult) => void) {
      inner.export(records, (result) => {
        if (result.code === ExportResultCode.SUCCESS) delivered += records.length;
        done(result);
      });
    },
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
    shutdown: () => inner.shutdown(),
  };
  const provider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: counting })] });
  const logger = provider.getLogger("microenforcer");
  const severity = { DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 } as const;
  return {
    emit: (r) =>
      logger.emit({ eventName: r.eventName, severityNumber: severity[r.severity], severityText: r.severity, body: r.body, attributes: r.attributes, timestamp: r.timestamp, observedTimestamp: r.observedTimestamp }),
    delivered: () => delivered,
    close: () => provider.shutdown(),
  };
}

const sender = pipeline === "sdk" ? sdk() : microenforcer();
let emitted = 0;
const started = performance.now();
const cpuStart = process.cpuUsage();
const end = started + seconds * 1000;
const rate = load === "max" ? undefined : Number(load);
while (performance.now() < end) {
  const due = rate === undefined ? sender.delivered() + AHEAD : Math.floor(((performance.now() - started) / 1000) * rate);
  while (emitted < due) sender.emit(record(emitted++));
  await sleep(1);
}
const loadEnded = performance.now();
// Drain: everything delivered, or nothing moved for 3 s (the SDK's queue dropped the rest).
let last = sender.delivered();
let lastMove = performance.now();
while (sender.delivered() < emitted && performance.now() - lastMove < 3000) {
  await sleep(10);
  if (sender.delivered() !== last) [last, lastMove] = [sender.delivered(), performance.now()];
}
const deliveredAt = sender.delivered() < emitted ? lastMove : performance.now();
const cpu = process.cpuUsage(cpuStart);
const delivered = sender.delivered();
await sender.close();
process.stdout.write(
  `${JSON.stringify({
    pipeline,
    load,
    emitted,
    delivered,
    lost: emitted - delivered,
    seconds: (deliveredAt - started) / 1000,
    drainSeconds: Math.max(0, (deliveredAt - loadEnded) / 1000),
    recordsPerSecond: delivered / ((deliveredAt - started) / 1000),
    cpuPercent: ((cpu.user + cpu.system) / 1000 / (deliveredAt - started)) * 100,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  })}\n`,
);
process.exit(0);
