/**
 * `npm run bench:export`: sustained records/s from one sidecar process to the real
 * OpenTelemetry Collector over OTLP http/protobuf and gRPC, with that process's CPU and
 * peak RSS. Each sender runs pinned to one CPU (taskset), the collector elsewhere, with the
 * sidecar's NODE_OPTIONS (webhook/sidecar-heap.ts).
 *
 * Two loads per pipeline (bench/export-sender.ts): `max`, as fast as it delivers; and the
 * target rate, 20 000 records/s, open loop. The baseline, measured in the same run, is the
 * SDK's BatchLogRecordProcessor with its OTLP exporter, without our ids, queue and spool.
 *
 * Targets (issue 7): ≥ 20 000 records/s on one core, RSS ≤ 150 MB at that rate.
 * Prints a table and PASS/FAIL lines, writes bench/results/export.json; exits 0 whatever the numbers.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { promisify } from "node:util";
import { buildCollector, startCollector } from "../test/infra/otelcol/collector.ts";
import { SIDECAR_NODE_OPTIONS } from "../test/infra/sidecar-node.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const TARGET_RATE = 20_000;
const TARGET_RSS_MB = 150;
const sender = new URL("./export-sender.ts", import.meta.url).pathname;

interface Result {
  protocol: string;
  pipeline: string;
  load: string;
  emitted: number;
  delivered: number;
  lost: number;
  seconds: number;
  drainSeconds: number;
  recordsPerSecond: number;
  cpuPercent: number;
  maxRssMB: number;
}

const hasTaskset = await promisify(execFile)("taskset", ["-V"]).then(
  () => true,
  () => false,
);

async function run(protocol: "http/protobuf" | "grpc", endpoint: string, pipeline: string, load: string): Promise<Result> {
  const command = [process.execPath, sender, pipeline, load, String(SECONDS)];
  const child = spawn(hasTaskset ? "taskset" : command[0]!, hasTaskset ? ["-c", "0", ...command] : command.slice(1), {
    env: { ...process.env, NODE_OPTIONS: SIDECAR_NODE_OPTIONS, OTEL_EXPORTER_OTLP_PROTOCOL: protocol, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout!.on("data", (chunk: Buffer) => (out += chunk.toString()));
  await once(child, "exit");
  return { protocol, ...(JSON.parse(out) as Omit<Result, "protocol">) };
}

const binary = await buildCollector();
const collector = await startCollector(binary);
// The collector on the other CPUs, so that it does not share the sender's core.
if (hasTaskset && cpus().length > 1) {
  const { stdout } = await promisify(execFile)("pgrep", ["-f", binary]).catch(() => ({ stdout: "" }));
  for (const pid of stdout.trim().split("\n").filter(Boolean)) await promisify(execFile)("taskset", ["-a", "-pc", `1-${cpus().length - 1}`, pid]).catch(() => undefined);
}
const results: Result[] = [];
try {
  for (const protocol of ["http/protobuf", "grpc"] as const) {
    for (const pipeline of ["sdk", "microenforcer"]) {
      for (const load of ["max", String(TARGET_RATE)]) {
        const result = await run(protocol, collector.endpoint(protocol), pipeline, load);
        results.push(result);
        process.stderr.write(`${protocol} ${pipeline} ${load}: ${Math.round(result.recordsPerSecond)} records/s\n`);
      }
    }
  }
} finally {
  await collector.stop();
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const rows = results.map((r) => [
  r.protocol,
  r.pipeline === "sdk" ? "SDK baseline" : "microenforcer",
  r.load === "max" ? "max" : `${fmt(Number(r.load))}/s`,
  fmt(r.recordsPerSecond),
  fmt(r.lost),
  fmt(r.drainSeconds, 1),
  `${fmt(r.cpuPercent)} %`,
  `${fmt(r.maxRssMB)} MB`,
]);
const header = ["protocol", "pipeline", "offered", "delivered/s", "lost", "drain s", "CPU (1 core)", "peak RSS"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
console.log(`\nOTLP export, ${SECONDS} s per run, sender pinned to one CPU${hasTaskset ? "" : " (taskset missing: not pinned)"}, NODE_OPTIONS ${SIDECAR_NODE_OPTIONS}, ${cpus().length} CPUs, collector: file + debug exporters\n`);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(line(row));
console.log("");

const verdicts: string[] = [];
for (const protocol of ["http/protobuf", "grpc"]) {
  const max = results.find((r) => r.protocol === protocol && r.pipeline === "microenforcer" && r.load === "max")!;
  const atRate = results.find((r) => r.protocol === protocol && r.pipeline === "microenforcer" && r.load !== "max")!;
  const baseline = results.find((r) => r.protocol === protocol && r.pipeline === "sdk" && r.load === "max")!;
  const ratio = max.recordsPerSecond / baseline.recordsPerSecond;
  verdicts.push(
    `${max.recordsPerSecond >= TARGET_RATE && max.cpuPercent <= 105 ? "PASS" : "FAIL"}  ${protocol}: ${fmt(max.recordsPerSecond)} records/s sustained on one core (target ≥ ${fmt(TARGET_RATE)}); ${fmt(ratio * 100)} % of the SDK baseline's ${fmt(baseline.recordsPerSecond)}`,
    `${atRate.lost === 0 && atRate.drainSeconds <= 2 ? "PASS" : "FAIL"}  ${protocol}: at ${fmt(TARGET_RATE)} records/s offered, ${fmt(atRate.delivered)} of ${fmt(atRate.emitted)} delivered, ${fmt(atRate.drainSeconds, 1)} s behind at the end`,
    `${atRate.maxRssMB <= TARGET_RSS_MB ? "PASS" : "FAIL"}  ${protocol}: peak RSS ${fmt(atRate.maxRssMB)} MB at that rate (target ≤ ${TARGET_RSS_MB} MB)`,
  );
}
for (const verdict of verdicts) console.log(verdict);

mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(new URL("./results/export.json", import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, cpus: cpus().length, pinned: hasTaskset, results, verdicts }, null, 2)}\n`);
