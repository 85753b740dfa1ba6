/**
 * Issue 7's delivery guarantees against the real OpenTelemetry Collector: a 60 s outage
 * under 200 records/s, the sidecar SIGKILLed during an outage, and the spool cap. Records
 * are followed by their log.record.uid from the emitter's own stdout to the
 * collector's file exporter.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { createEmitter } from "../../microenforcer/emit/emitter.ts";
import type { OtlpProtocol } from "../../microenforcer/emit/otlp-config.ts";
import { buildResource } from "../../microenforcer/emit/resource.ts";
import { buildCollector, freePorts, parseFileExporterOutput, type CollectedLogRecord, type Ports } from "../infra/otelcol/collector.ts";
import { acceptsConnections, stopProcess } from "../infra/processes.ts";
import { emitWorkload, KINDS } from "../fixtures/emit/workload.ts";

const OUTAGE_SECONDS = Number(process.env.DELIVERY_OUTAGE_SECONDS ?? 60);
const RATE = 200;
const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;
const crashAtCap = new URL("../fixtures/emit/crash-at-cap.ts", import.meta.url).pathname;
const OTLP_ENV = ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"];

/**
 * The real collector, restartable on the same ports, each run writing its own file that
 * outlives it (the shared helper removes its output on stop; here the records received
 * before an outage are part of the evidence).
 */
class RestartableCollector {
  readonly #binary: string;
  readonly #dir: string;
  readonly ports: Ports;
  #runs = 0;
  #child: ChildProcess | undefined;

  constructor(binary: string, dir: string, ports: Ports) {
    this.#binary = binary;
    this.#dir = dir;
    this.ports = ports;
  }

  endpoint(protocol: OtlpProtocol): string {
    return `http://127.0.0.1:${protocol === "grpc" ? this.ports.grpc : this.ports.http}`;
  }

  async start(): Promise<void> {
    const run = ++this.#runs;
    const config = join(this.#dir, `collector-${run}.yaml`);
    writeFileSync(
      config,
      JSON.stringify({
        receivers: { otlp: { protocols: { grpc: { endpoint: `127.0.0.1:${this.ports.grpc}` }, http: { endpoint: `127.0.0.1:${this.ports.http}` } } } },
        exporters: { file: { path: join(this.#dir, `received-${run}.jsonl`), format: "json", flush_interval: "100ms" } },
        service: { telemetry: { metrics: { level: "none" } }, pipelines: { logs: { receivers: ["otlp"], exporters: ["file"] } } },
      }),
    );
    this.#child = spawn(this.#binary, ["--config", `file:${config}`], { stdio: "ignore" });
    const deadline = Date.now() + 30_000;
    while (!((await acceptsConnections(this.ports.grpc)) && (await acceptsConnections(this.ports.http)))) {
      if (Date.now() > deadline) throw new Error("the collector did not start listening");
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopProcess(this.#child);
    this.#child = undefined;
  }

  /** Everything every run wrote, in arrival order. */
  received(): CollectedLogRecord[] {
    return Array.from({ length: this.#runs }, (_, i) =>
      parseFileExporterOutput(readFileSync(join(this.#dir, `received-${i + 1}.jsonl`), "utf8").toString()),
    ).flat();
  }
}

interface Printed {
  id: string;
  eventName: string;
  attributes: Record<string, unknown>;
}

/** The emitter's stdout, one JSON record per line: the ground truth of what was emitted. */
class StdoutRecords extends Writable {
  readonly records: Printed[] = [];
  #rest = "";

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    const lines = (this.#rest + chunk.toString()).split("\n");
    this.#rest = lines.pop() ?? "";
    for (const line of lines) this.records.push(printed(line));
    done();
  }
}

function printed(line: string): Printed {
  const record = JSON.parse(line) as { eventName: string; attributes: Record<string, unknown> };
  return { id: String(record.attributes["log.record.uid"]), eventName: record.eventName, attributes: record.attributes };
}

const idOf = (record: CollectedLogRecord) => String(record.attributes["log.record.uid"]);

/** First arrival of each id, in arrival order (at-least-once delivery may repeat some). */
function firstArrivals(records: CollectedLogRecord[]): CollectedLogRecord[] {
  const seen = new Set<string>();
  return records.filter((record) => !seen.has(idOf(record)) && seen.add(idOf(record)));
}

function pointAt(protocol: OtlpProtocol, endpoint: string): void {
  for (const name of OTLP_ENV) delete process.env[name];
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = protocol;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
}

async function until(check: () => boolean, timeoutMillis: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMillis} ms: ${what}`);
    await sleep(100);
  }
}

describe("delivery: records are never lost silently (real OpenTelemetry Collector)", function () {
  let binary: string;
  let dir: string;
  let collector: RestartableCollector;
  const savedEnv = Object.fromEntries(OTLP_ENV.map((name) => [name, process.env[name]]));

  before(async function () {
    this.timeout(30 * 60 * 1000); // a cold build fetches and compiles the collector's modules
    binary = await buildCollector();
  });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "delivery-"));
    collector = new RestartableCollector(binary, dir, await freePorts());
  });

  afterEach(async () => {
    await collector.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const [name, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it(`collector stopped for ${OUTAGE_SECONDS} s under ${RATE} records/s (http/protobuf and gRPC at once): every record arrives, in order per process`, async function () {
    this.timeout((OUTAGE_SECONDS + 150) * 1000);
    await collector.start();
    const senders = (["http/protobuf", "grpc"] as const).map((protocol) => {
      pointAt(protocol, collector.endpoint(protocol));
      const out = new StdoutRecords();
      const pod = `outage-${protocol.replace("/", "-")}`;
      const emitter = createEmitter({
        exporter: "both",
        format: "json",
        out,
        err: new Writable({ write: (_c, _e, done) => done() }),
        resource: buildResource({ POD_NAME: pod }, "0.1.0"),
        spool: { dir: join(dir, `spool-${protocol.replace("/", "-")}`) },
      });
      return { protocol, pod, out, emitter };
    });
    let n = 0;
    const load = setInterval(() => {
      for (let i = 0; i < RATE / 20; i++, n++) for (const sender of senders) emitWorkload(sender.emitter, n);
    }, 50);
    try {
      await sleep(5000);
      await collector.stop();
      const outageStarted = Date.now();
      await sleep(OUTAGE_SECONDS * 1000);
      for (const sender of senders) assert.ok(sender.emitter.stats().pending > RATE * (OUTAGE_SECONDS - 5), `${sender.protocol}: records wait during the outage`);
      await collector.start();
      const restarted = Date.now();
      // Caught up: the backlog is down to what one second of load adds, while the load goes on.
      const caughtUp = senders.map((sender) => until(() => sender.emitter.stats().pending < RATE, 60_000, `${sender.protocol} catches up`).then(() => Date.now() - restarted));
      const catchUp = await Promise.all(caughtUp);
      await sleep(2000);
      clearInterval(load);
      for (const [i, sender] of senders.entries()) {
        await until(() => sender.emitter.stats().pending === 0, 60_000, `${sender.protocol} drains its spool`);
        console.log(`      ${sender.protocol}: ${sender.out.records.length} records; outage ${Math.round((restarted - outageStarted) / 1000)} s; backlog delivered ${(catchUp[i]! / 1000).toFixed(1)} s after the collector restarted`);
      }
    } finally {
      clearInterval(load);
      for (const sender of senders) await sender.emitter.shutdown();
    }
    await collector.stop();

    const received = collector.received();
    for (const sender of senders) {
      const arrived = firstArrivals(received.filter((record) => record.resource["k8s.pod.name"] === sender.pod));
      const emitted = sender.out.records.map((record) => record.id);
      assert.ok(emitted.length >= RATE * (OUTAGE_SECONDS + 5), `${sender.protocol}: ${emitted.length} records emitted`);
      assert.deepEqual(new Set(arrived.map(idOf)), new Set(emitted), `${sender.protocol}: every record arrived, nothing else`);
      assert.deepEqual(arrived.map(idOf), emitted, `${sender.protocol}: in emit order`);
      for (let pid = 1000; pid < 1005; pid++) {
        const seqs = arrived.filter((r) => r.attributes["process.pid"] === pid).map((r) => r.attributes["test.seq"] as number);
        assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), `${sender.protocol}: in order for pid ${pid}`);
      }
    }
  });

  it("the sidecar SIGKILLed during an outage and restarted: its spooled records arrive", async function () {
    this.timeout(120_000);
    await collector.start();
    const spool = join(dir, "spool");
    const env = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint("http/protobuf"), OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", MICROENFORCER_SPOOL_DIR: spool, POD_NAME: "sigkill" };
    const sidecar = () => {
      const child = spawn(process.execPath, [cli, "watch", "--exporter", "both", "--format", "json"], { env, stdio: ["ignore", "pipe", "ignore"] });
      const out = new StdoutRecords();
      child.stdout!.pipe(out);
      return { child, out };
    };
    // Processes for the sensor to see: about 100 exec + 100 exit records a second.
    const workload = spawn("sh", ["-c", "while :; do /bin/true; sleep 0.01; done"], { stdio: "ignore" });
    try {
      const first = sidecar();
      await until(() => first.out.records.length > 50, 20_000, "the first sidecar reports");
      await collector.stop();
      await sleep(5000);
      first.child.kill("SIGKILL");
      await new Promise((resolve) => first.child.once("exit", resolve));
      const killed = first.out.records;
      assert.ok(killed.length > 500, `${killed.length} records before the kill`);

      const second = sidecar();
      await until(() => second.out.records.some((r) => r.attributes["microenforcer.spool.recovered"] !== undefined), 20_000, "the second sidecar finds the spool");
      await collector.start();
      const wanted = new Set(killed.map((r) => r.id));
      await until(() => collector.received().filter((r) => wanted.has(idOf(r))).length >= wanted.size, 60_000, "the first sidecar's records arrive");
      await stopProcess(second.child);
      const arrived = new Set(collector.received().map(idOf));
      assert.deepEqual(killed.filter((r) => !arrived.has(r.id)), [], "nothing the killed sidecar printed is missing");
    } finally {
      await stopProcess(workload);
    }
  });

  it("at the spool cap: the loss report says exactly how many of which kind were lost", async function () {
    this.timeout(60_000);
    pointAt("http/protobuf", collector.endpoint("http/protobuf")); // nothing listens yet
    const out = new StdoutRecords();
    const emitter = createEmitter({
      exporter: "both",
      format: "json",
      out,
      err: new Writable({ write: (_c, _e, done) => done() }),
      resource: buildResource({ POD_NAME: "cap" }, "0.1.0"),
      spool: { dir: join(dir, "spool"), maxBytes: 256 << 10 },
    });
    for (let n = 0; n < 3000; n++) {
      emitWorkload(emitter, n);
      if (n % 100 === 0) await sleep(5);
    }
    const { dropped } = emitter.stats();
    assert.ok(dropped > 0, "the cap was reached");
    await collector.start();
    await until(() => emitter.stats().pending === 0 && collector.received().some((r) => r.attributes["microenforcer.loss.reason"] !== undefined), 30_000, "drain and report");
    await emitter.shutdown();
    await collector.stop();

    assertLossReported(collector.received(), out.records, dropped);
  });

  it("killed at the spool cap before it could report: the next start reports the loss, exactly", async function () {
    this.timeout(60_000);
    const spool = join(dir, "spool");
    const env = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint("http/protobuf"), OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" };
    const crashed = spawn(process.execPath, [crashAtCap, spool], { env, stdio: ["ignore", "pipe", "pipe"] });
    const printedBefore = new StdoutRecords();
    crashed.stdout!.pipe(printedBefore);
    let stderr = "";
    crashed.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const [, signal] = (await new Promise((resolve) => crashed.once("exit", (...args) => resolve(args)))) as [number | null, NodeJS.Signals | null];
    assert.equal(signal, "SIGKILL", stderr);
    const dropped = Number(/dropped (\d+)/.exec(stderr)?.[1]);
    assert.ok(dropped > 0, `the cap was reached: ${stderr}`);

    await collector.start();
    pointAt("http/protobuf", collector.endpoint("http/protobuf"));
    // The restarted sidecar finds the spool still full: its own first records (the notice
    // of what it recovered) may be dropped too, and are in the same report.
    const printedAfter = new StdoutRecords();
    const emitter = createEmitter({
      exporter: "both",
      format: "json",
      out: printedAfter,
      err: new Writable({ write: (_c, _e, done) => done() }),
      resource: buildResource({ POD_NAME: "crash" }, "0.1.0"),
      spool: { dir: spool, maxBytes: 256 << 10 },
    });
    try {
      await until(() => emitter.stats().pending === 0 && collector.received().some((r) => r.attributes["microenforcer.loss.reason"] !== undefined), 30_000, "drain and report");
    } finally {
      await emitter.shutdown();
    }
    const droppedAfter = emitter.stats().dropped;
    await collector.stop();
    const printed = [...printedBefore.records, ...printedAfter.records.filter((r) => r.attributes["microenforcer.loss.reason"] === undefined)];
    assertLossReported(collector.received(), printed, dropped + droppedAfter);
  });
});

/** One spool_full report, whose counts (in all and by kind) are what was printed and never arrived. */
function assertLossReported(received: CollectedLogRecord[], printed: Printed[], dropped: number): void {
  const arrived = new Set(received.map(idOf));
  const lost = printed.filter((r) => !arrived.has(r.id));
  const reports = received.filter((r) => r.attributes["microenforcer.loss.reason"] !== undefined);
  assert.equal(reports.length, 1);
  const report = reports[0]!.attributes;
  assert.equal(report["microenforcer.loss.reason"], "spool_full");
  assert.equal(lost.length, dropped);
  assert.equal(report["microenforcer.loss.count"], lost.length);
  for (const kind of KINDS) {
    assert.equal(report[`microenforcer.loss.by_event.${kind.replace("microenforcer.", "")}`], lost.filter((r) => r.eventName === kind).length, kind);
  }
}
