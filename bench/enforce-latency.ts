/**
 * `npm run bench:enforce`: how fast enforce mode kills a blocked executable.
 *
 * The same workload runs twice in fresh PID namespaces: with an enforce policy blocking the
 * probe binary, and — the baseline, in the same run — with the audit version of that policy,
 * where the sensor only records. Reported per run, from the probes' own exec times:
 * - enforce: detection→kill (the sensor saw the process → kill(2) returned; the record's
 *   microenforcer.enforcement.latency_ms) and exec→kill;
 * - audit: exec→record, the time the sensor needs just to see and report a process.
 * Target: detection→kill p99 ≤ 20 ms. Exit 0 whatever the numbers.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseProbeLog, percentile, type Probe } from "./lib/analyse.ts";
import { compileWorkload } from "./lib/compile-workload.ts";
import { runInNamespace } from "./lib/namespace-run.ts";
import { sidecarNode } from "../test/infra/sidecar-node.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const count = 300;
/** Long enough that a probe dies of SIGKILL, never of old age, even on a busy machine. */
const lifetimeUs = 2_000_000;
const spacingUs = 20_000;
const targetP99Ms = 20;

interface Outcome {
  probes: number;
  /** Probe pid → the first record about it of the kind the run looks for. */
  matched: Array<{ probe: Probe; observedMs: number; attributes: Record<string, unknown> }>;
}

function policy(mode: "audit" | "enforce"): string {
  return `apiVersion: microenforcer.dev/v1alpha1
kind: RuntimePolicy
metadata: {name: bench-${mode}}
spec:
  enforcementMode: ${mode}
  forensics: {processActivity: true, fullCommandArguments: true, networkActivity: false}
  controls:
    executables: {blocked: ["**/probe"]}
`;
}

async function run(mode: "audit" | "enforce", dir: string, workload: { probe: string; launcher: string }): Promise<Outcome> {
  const policyFile = join(dir, `${mode}.yaml`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(policyFile, policy(mode));
  const files = await runInNamespace({
    name: mode,
    dir: join(dir, mode),
    idleSeconds: 1,
    ...workload,
    classes: [`${mode}:${lifetimeUs}:${count}:${spacingUs}`],
    watcher: [...sidecarNode, join(root, "dist/cli/main.js"), "watch", "--format", "json", "--exporter", "stdout", "--policy", policyFile],
    forkstat: false,
  });
  const probes = parseProbeLog(files.probes);
  const byPid = new Map(probes.map((p) => [p.pid, p]));
  // Audit: the exec record; enforce: the violation record (built after the kill).
  const wanted = mode === "audit" ? "microenforcer.process.exec" : "microenforcer.policy.violation";
  const matched: Outcome["matched"] = [];
  const seen = new Set<number>();
  for (const line of files.records.split("\n")) {
    if (line === "") continue;
    const r = JSON.parse(line) as { eventName: string; observedTimestamp: string; attributes: Record<string, unknown> };
    const pid = Number(r.attributes["process.pid"]);
    const probe = byPid.get(pid);
    if (r.eventName !== wanted || probe === undefined || seen.has(pid)) continue;
    if (!(r.attributes["process.command_args"] as string[] | undefined)?.includes(probe.id)) continue;
    seen.add(pid);
    matched.push({ probe, observedMs: Date.parse(r.observedTimestamp), attributes: r.attributes });
  }
  return { probes: probes.length, matched };
}

const fmt = (v: number | undefined): string => (v === undefined ? "-" : `${v.toFixed(1)} ms`);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (unshare --pid)");
  const tmp = mkdtempSync(join(tmpdir(), "bench-enforce-"));
  const workload = compileWorkload(tmp);
  console.error("enforce run ...");
  const enforce = await run("enforce", tmp, workload);
  console.error("audit run (baseline) ...");
  const audit = await run("audit", tmp, workload);

  const killed = enforce.matched.filter((m) => m.attributes["microenforcer.action"] === "killed");
  const detectionToKill = killed.map((m) => Number(m.attributes["microenforcer.enforcement.latency_ms"]));
  const execToKill = killed.map((m) => m.observedMs - m.probe.execMs);
  const execToRecord = audit.matched.map((m) => m.observedMs - m.probe.execMs);
  const row = (name: string, values: number[]): string =>
    `${name.padEnd(34)} ${String(values.length).padStart(5)}   ${fmt(percentile(values, 50)).padStart(9)}   ${fmt(percentile(values, 99)).padStart(9)}   ${fmt(Math.max(...values)).padStart(9)}`;
  const p99Kill = percentile(detectionToKill, 99);
  // A difference, not a ratio: record times have ms resolution, so exec->record is near 0.
  const extra = (percentile(execToKill, 99) ?? NaN) - (percentile(execToRecord, 99) ?? NaN);
  console.log(
    [
      `Enforcement latency: ${count} blocked probes (each would live ${lifetimeUs / 1e6} s), one every ${spacingUs / 1000} ms`,
      "",
      `${"".padEnd(34)} ${"n".padStart(5)}   ${"p50".padStart(9)}   ${"p99".padStart(9)}   ${"max".padStart(9)}`,
      row("enforce: detection -> kill", detectionToKill),
      row("enforce: probe exec -> kill", execToKill),
      row("audit (baseline): exec -> record", execToRecord),
      "",
      `launched ${count}; ${count - enforce.probes} killed before they could log their own start (not in the table);`,
      `of the ${enforce.probes} that logged: killed ${killed.length}, other outcomes ${enforce.matched.length - killed.length}, no violation record ${enforce.probes - enforce.matched.length}`,
      `exec->kill p99 - exec->record p99 (same workload, audit): ${extra >= 0 ? "+" : ""}${extra.toFixed(1)} ms`,
      "(exec times are the probes' own CLOCK_REALTIME; record times have ms resolution)",
      "",
      `${p99Kill !== undefined && p99Kill <= targetP99Ms ? "PASS" : "FAIL"}  detection -> kill p99 <= ${targetP99Ms} ms: ${fmt(p99Kill)}`,
      `${killed.length === enforce.probes ? "PASS" : "FAIL"}  every blocked probe killed: ${killed.length}/${enforce.probes}`,
    ].join("\n"),
  );
  const resultsDir = join(root, "bench/results");
  mkdirSync(resultsDir, { recursive: true });
  const summary = (values: number[]) => ({ n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) });
  writeFileSync(
    join(resultsDir, "enforce-latency.json"),
    `${JSON.stringify({ date: new Date().toISOString(), count, lifetimeUs, spacingUs, detectionToKill: summary(detectionToKill), execToKill: summary(execToKill), execToRecord: summary(execToRecord), killed: killed.length }, null, 2)}\n`,
  );
  rmSync(tmp, { recursive: true, force: true });
}

await main();
