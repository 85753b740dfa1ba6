/**
 * `npm run bench:preload`: complete mode (the preload library + the sidecar) against the
 * /proc poller alone, measured in the same run, each watcher in fresh PID namespaces:
 *
 * 1. capture: dynamically linked probes that live under a millisecond or about one, started
 *    by the C launcher (ground truth: each probe's own log line), and each watcher's idle
 *    CPU over an idle phase before them;
 * 2. per-exec cost of the library: exec-timer runs a small dynamic program alternately
 *    without and with the library, spawn to exit, with the sidecar answering in audit mode
 *    (no wait) and in enforce mode: a program run before goes on by the allow table
 *    (standing), and, under a policy that lets no program stand (drift blocks, with no
 *    container start to judge it against), every run waits for the verdict (asked); and a
 *    shell's plain command, `/bin/sh -c :`, standing under the enforce policy;
 * 3. blocking before main: 300 runs of a program an enforce policy blocks, each asked to
 *    write a marker first thing in main; with the library, and with the poller alone (kill).
 *
 * Prints a table with targets marked PASS/FAIL and writes bench/results/preload.json.
 * Exit 0 whatever the numbers; non-zero only when the harness itself fails.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { captureByClass, cpuPercent, parseProbeLog, parseRecords, parseStatSample, percentile, type ClassResult } from "./lib/analyse.ts";
import { compileWorkload } from "./lib/compile-workload.ts";
import { runInNamespace } from "./lib/namespace-run.ts";
import { sidecarNode } from "../test/infra/sidecar-node.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "dist/cli/main.js");
const workloadDir = join(root, "bench/workload");

const classes = [
  { name: "sub-ms", lifetimeUs: 0, count: 500, spacingUs: 3_000 },
  { name: "1ms", lifetimeUs: 1_000, count: 500, spacingUs: 3_000 },
];
const quickIdle = Number(process.env.BENCH_IDLE_SECONDS) || undefined;
// Both alike: over 20 s, one 10 ms tick of the kernel's accounting is 0.05 % of a core.
const idleSeconds = { complete: quickIdle ?? 60, poller: quickIdle ?? 60 };
const rounds = 1000;
const blockRuns = 300;
const targets = { capturePercent: 100, auditP50Us: 100, enforceP50Us: 300, p99Us: 2000, idleCpuPercent: 0.5, pollerIdleCpuPercent: 1 };

const us = (ns: number | undefined): string => (ns === undefined ? "-" : `${(ns / 1000).toFixed(0)} µs`);
const pct = (v: number): string => `${v.toFixed(1)}%`;

function policy(dir: string, name: string, spec: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: ${name}}\nspec:\n${spec}`);
  return file;
}

/** The library installed as the injector's init container does it, in a directory of its own. */
function install(dir: string, policyFile: string): { socket: string; library: string } {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  execFileSync(process.execPath, [cli, "preload", "install", "--dir", dir, "--policy", policyFile], { stdio: "pipe" });
  return { socket: join(dir, "exec.sock"), library: join(dir, "libmicroenforcer-exec.so") };
}

interface CaptureRun {
  classes: ClassResult[];
  idleCpuPercent: number;
}

async function capture(tmp: string, name: "complete" | "poller", probe: string, launcher: string): Promise<CaptureRun> {
  const dir = join(tmp, `capture-${name}`);
  const policyFile = policy(tmp, `capture-${name}`, "  forensics: {}\n");
  const lib = name === "complete" ? install(join(tmp, "lib-capture"), policyFile) : undefined;
  const files = await runInNamespace({
    name,
    dir,
    idleSeconds: idleSeconds[name],
    launcher,
    probe,
    classes: classes.map((c) => `${c.name}:${c.lifetimeUs}:${c.count}:${c.spacingUs}`),
    watcher: [...sidecarNode, cli, "watch", "--format", "json", "--exporter", "stdout", "--policy", policyFile, ...(lib ? ["--exec-socket", lib.socket] : [])],
    forkstat: false,
    ...(lib && { workloadEnv: [`LD_PRELOAD=${lib.library}`, `MICROENFORCER_EXEC_SOCKET=${lib.socket}`] }),
  });
  const probes = parseProbeLog(files.probes);
  return {
    classes: captureByClass(probes, parseRecords(files.records)),
    idleCpuPercent: cpuPercent(parseStatSample(files.idleStart), parseStatSample(files.idleEnd)),
  };
}

/**
 * One fresh PID namespace: the sidecar in complete mode (or the poller alone), then a shell
 * script beside it once it listens; returns what the script printed.
 */
async function inNamespace(tmp: string, name: string, policyFile: string, script: string, complete: boolean): Promise<{ out: string; lib: { socket: string; library: string } }> {
  const lib = install(join(tmp, `lib-${name}`), policyFile);
  const out = join(tmp, `${name}.out`);
  const records = join(tmp, `${name}.records`);
  const watch = [...sidecarNode, cli, "watch", "--format", "json", "--exporter", "stdout", "--policy", policyFile, ...(complete ? ["--exec-socket", lib.socket] : [])];
  const ready = complete ? "complete mode: preload reports on" : "microenforcer.sensor.trigger";
  const init = `
    ${watch.map((a) => `'${a}'`).join(" ")} > ${records} 2>&1 &
    sensor=$!
    until grep -q '${ready}' ${records} 2>/dev/null; do sleep 0.05; done
    sleep 1
    LIB=${lib.library} SOCKET=${lib.socket}
    ( ${script} ) > ${out} 2>&1
    kill -INT $sensor; wait $sensor`;
  const child = spawn("unshare", ["--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", init], { stdio: ["ignore", "inherit", "inherit"] });
  const [code] = (await once(child, "exit")) as [number | null];
  if (code !== 0) throw new Error(`${name}: the namespace's script exited with ${code}`);
  return { out: readFileSync(out, "utf8"), lib };
}

interface Overhead {
  withoutP50: number;
  withoutP99: number;
  withP50: number;
  withP99: number;
  /** with - without, at each percentile (ns). */
  p50: number;
  p99: number;
  failures: number;
}

type CostMode = "audit" | "standing" | "asked";

const costSpecs: Record<CostMode, string> = {
  audit: "  enforcementMode: audit\n",
  // A control that does not match: every program is allowed, and stands after its first run.
  standing: "  enforcementMode: enforce\n  controls:\n    executables: {blocked: ['**/never-this']}\n",
  // Drift blocks, and no container start is known here to judge it against: no program's
  // allow holds however it runs, so each run asks, as any program's first run does.
  asked: "  enforcementMode: enforce\n  controls:\n    executables: {blocked: ['**/never-this']}\n    drift: {block: true}\n",
};

/** `program`: the command exec-timer runs (words); `label` names the run's files. */
async function overhead(tmp: string, mode: CostMode, timer: string, program: string, label: string = mode): Promise<Overhead> {
  const policyFile = policy(tmp, `overhead-${label}`, `  forensics: {networkActivity: false}\n${costSpecs[mode]}`);
  const { out } = await inNamespace(tmp, `overhead-${label}`, policyFile, `TIMER_PRELOAD=$LIB TIMER_SOCKET=$SOCKET ${timer} ${rounds} ${program}`, true);
  const runs = out.trim().split("\n").map((l) => l.split(" "));
  const times = (which: string): number[] => runs.filter((r) => r[0] === which).map((r) => Number(r[1]));
  const [without, withLib] = [times("without"), times("with")];
  const p = (v: number[], q: number): number => percentile(v, q) ?? NaN;
  return {
    withoutP50: p(without, 50),
    withoutP99: p(without, 99),
    withP50: p(withLib, 50),
    withP99: p(withLib, 99),
    p50: p(withLib, 50) - p(without, 50),
    p99: p(withLib, 99) - p(without, 99),
    failures: runs.filter((r) => r[2] !== "0").length,
  };
}

/** How many of the blocked runs reached main (their marker exists), and how they ended. */
async function blocking(tmp: string, complete: boolean, program: string): Promise<{ reachedMain: number; exits: Record<string, number> }> {
  const name = complete ? "block-complete" : "block-poller";
  const policyFile = policy(tmp, name, "  enforcementMode: enforce\n  forensics: {networkActivity: false}\n  controls:\n    executables: {blocked: ['**/marker-blocked']}\n");
  const markers = join(tmp, `${name}-markers`);
  mkdirSync(markers);
  const env = complete ? "LD_PRELOAD=$LIB MICROENFORCER_EXEC_SOCKET=$SOCKET " : "";
  const { out } = await inNamespace(tmp, name, policyFile, `for i in $(seq 1 ${blockRuns}); do ${env}${program} ${markers}/m-$i 2>/dev/null; echo "exit $?"; done`, complete);
  const exits: Record<string, number> = {};
  for (const line of out.split("\n")) if (line.startsWith("exit ")) exits[line.slice(5)] = (exits[line.slice(5)] ?? 0) + 1;
  return { reachedMain: readdirSync(markers).length, exits };
}

interface Check {
  name: string;
  target: string;
  value: string;
  pass: boolean;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("needs root (unshare --pid)");
  if (!existsSync(cli)) throw new Error(`${cli} missing: run npm run build`);
  const tmp = mkdtempSync(join(tmpdir(), "bench-preload-"));
  chmodSync(tmp, 0o755);
  const { launcher } = compileWorkload(tmp);
  // Dynamically linked, unlike bench:process's static probe: the library loads only into these.
  const probe = join(tmp, "probe-dynamic");
  const timer = join(tmp, "exec-timer");
  const marker = join(tmp, "marker");
  const blocked = join(tmp, "marker-blocked");
  execFileSync("gcc", ["-O2", "-o", probe, join(workloadDir, "probe.c")]);
  execFileSync("gcc", ["-O2", "-o", timer, join(workloadDir, "exec-timer.c")]);
  execFileSync("gcc", ["-O2", "-o", marker, join(root, "test/fixtures/preload/marker.c")]);
  execFileSync("cp", [marker, blocked]);

  console.error(`capture, complete mode: ${idleSeconds.complete} s idle, then the probes ...`);
  const complete = await capture(tmp, "complete", probe, launcher);
  console.error(`capture, poller alone: ${idleSeconds.poller} s idle, then the probes ...`);
  const poller = await capture(tmp, "poller", probe, launcher);
  console.error(`per-exec cost: ${rounds} rounds without/with the library, audit, enforce (standing), enforce (asked), enforce (sh -c) ...`);
  const audit = await overhead(tmp, "audit", timer, marker);
  const enforce = await overhead(tmp, "standing", timer, marker);
  const asked = await overhead(tmp, "asked", timer, marker);
  // The commonest program a pod runs again and again: a shell's plain command (Debian's sh, a link to dash).
  const shell = await overhead(tmp, "standing", timer, "/bin/sh -c :", "shell");
  console.error(`blocking: ${blockRuns} runs of a blocked program, complete mode then the poller alone ...`);
  const blockComplete = await blocking(tmp, true, blocked);
  const blockPoller = await blocking(tmp, false, blocked);

  const checks: Check[] = [
    ...complete.classes.map((c) => {
      const value = (100 * c.withCommandLine) / c.n;
      return { name: `captured with cmdline, ${c.cls} (dynamic)`, target: `>= ${targets.capturePercent}%`, value: pct(value), pass: value >= targets.capturePercent };
    }),
    { name: "per-exec cost p50, audit", target: `<= ${targets.auditP50Us} µs`, value: us(audit.p50), pass: audit.p50 <= targets.auditP50Us * 1000 },
    { name: "per-exec cost p50, enforce", target: `<= ${targets.enforceP50Us} µs`, value: us(enforce.p50), pass: enforce.p50 <= targets.enforceP50Us * 1000 },
    { name: "per-exec cost p50, enforce asked", target: `<= ${targets.enforceP50Us} µs`, value: us(asked.p50), pass: asked.p50 <= targets.enforceP50Us * 1000 },
    { name: "per-exec cost p50, enforce sh -c", target: `<= ${targets.enforceP50Us} µs`, value: us(shell.p50), pass: shell.p50 <= targets.enforceP50Us * 1000 },
    { name: "per-exec cost p99, audit", target: `<= ${targets.p99Us} µs`, value: us(audit.p99), pass: audit.p99 <= targets.p99Us * 1000 },
    { name: "per-exec cost p99, enforce", target: `<= ${targets.p99Us} µs`, value: us(enforce.p99), pass: enforce.p99 <= targets.p99Us * 1000 },
    { name: "per-exec cost p99, enforce asked", target: `<= ${targets.p99Us} µs`, value: us(asked.p99), pass: asked.p99 <= targets.p99Us * 1000 },
    {
      name: "blocked before main",
      target: `${blockRuns}/${blockRuns}`,
      value: `${blockRuns - blockComplete.reachedMain}/${blockRuns}`,
      pass: blockComplete.reachedMain === 0,
    },
    { name: "idle CPU, complete mode", target: `<= ${targets.idleCpuPercent}%`, value: pct(complete.idleCpuPercent), pass: complete.idleCpuPercent <= targets.idleCpuPercent },
    { name: "idle CPU, the poller alone", target: `<= ${targets.pollerIdleCpuPercent}%`, value: pct(poller.idleCpuPercent), pass: poller.idleCpuPercent <= targets.pollerIdleCpuPercent },
  ];
  const row = (cells: string[]): string => cells.map((c, i) => c.padEnd([26, 8, 16, 16][i] ?? 16)).join(" ").trimEnd();
  const lines = [
    "Complete mode (preload library + sidecar) vs the /proc poller alone, same run, fresh PID namespaces",
    "",
    row(["capture (cmdline exact)", "n", "complete", "poller"]),
    ...complete.classes.map((c, i) => {
      const b = poller.classes[i]!;
      return row([c.cls, String(c.n), pct((100 * c.withCommandLine) / c.n), pct((100 * b.withCommandLine) / b.n)]);
    }),
    row(["exec->record p50 / p99", "", `${percentile(complete.classes.flatMap((c) => c.latencyMs), 50) ?? "-"} / ${percentile(complete.classes.flatMap((c) => c.latencyMs), 99) ?? "-"} ms`, `${percentile(poller.classes.flatMap((c) => c.latencyMs), 50) ?? "-"} / ${percentile(poller.classes.flatMap((c) => c.latencyMs), 99) ?? "-"} ms`]),
    row(["idle CPU, % of one core", "", pct(complete.idleCpuPercent), pct(poller.idleCpuPercent)]),
    `workload: ${classes.map((c) => `${c.count} x ${c.name} every ${c.spacingUs / 1000} ms`).join(", ")}, dynamically linked probes; idle ${idleSeconds.complete} s / ${idleSeconds.poller} s`,
    "",
    row(["per-exec cost (spawn->exit)", "", "audit", "enforce", "enforce asked", "enforce sh -c"]),
    row(["without library p50 / p99", "", ...[audit, enforce, asked, shell].map((o) => `${us(o.withoutP50)} / ${us(o.withoutP99)}`)]),
    row(["with library p50 / p99", "", ...[audit, enforce, asked, shell].map((o) => `${us(o.withP50)} / ${us(o.withP99)}`)]),
    row(["cost p50 / p99", "", ...[audit, enforce, asked, shell].map((o) => `${us(o.p50)} / ${us(o.p99)}`)]),
    `${rounds} rounds, each the program without and with the library in alternating order; enforce: the program goes on by the allow table after its first run; asked: a policy under which no program stands, each run waits for the verdict; sh -c: /bin/sh -c : under the enforce policy, standing as a plain command; runs that did not exit 0: ${audit.failures} audit, ${enforce.failures} enforce, ${asked.failures} asked, ${shell.failures} sh -c`,
    "",
    row(["blocked program", "", "complete", "poller"]),
    row(["runs whose main never ran", "", `${blockRuns - blockComplete.reachedMain}/${blockRuns}`, `${blockRuns - blockPoller.reachedMain}/${blockRuns}`]),
    row(["exit statuses", "", JSON.stringify(blockComplete.exits), JSON.stringify(blockPoller.exits)]),
    "",
    "targets (complete mode, and the poller alone at idle):",
    ...checks.map((c) => `  ${c.pass ? "PASS" : "FAIL"}  ${c.name.padEnd(36)} ${c.target.padEnd(10)} ${c.value}`),
  ];
  console.log(lines.join("\n"));
  const resultsDir = join(root, "bench/results");
  mkdirSync(resultsDir, { recursive: true });
  const json = {
    date: new Date().toISOString(),
    environment: { node: process.version, kernel: execFileSync("uname", ["-r"], { encoding: "utf8" }).trim(), cpus: availableParallelism() },
    capture: { workload: classes, idleSeconds, complete, poller },
    overheadNs: { rounds, audit, enforce, asked, shell },
    blocking: { runs: blockRuns, complete: blockComplete, poller: blockPoller },
    targets: checks,
  };
  writeFileSync(join(resultsDir, "preload.json"), `${JSON.stringify(json, null, 2)}\n`);
  if (process.env.BENCH_KEEP === "1") console.error(`raw files kept in ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}

try {
  await main();
} catch (err) {
  console.error(`bench:preload: harness error: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
}
