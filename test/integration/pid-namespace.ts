/**
 * Runs the real `microenforcer watch` CLI, with the NODE_OPTIONS the injector gives the
 * sidecar, as the sensor of a fresh PID namespace (`unshare --pid --fork --mount-proc`,
 * root needed), runs a workload script beside it,
 * and returns the JSON records it printed. PID 1 of the namespace is a shell playing the
 * part of a container's init; the workload runs as its children.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SIDECAR_NODE_OPTIONS } from "../infra/sidecar-node.ts";

export const cli = new URL("../../dist/cli/main.js", import.meta.url).pathname;

export interface JsonRecord {
  timestamp: string;
  observedTimestamp: string;
  severityNumber: number;
  severityText: string;
  eventName: string;
  body: string;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
}

export interface NamespaceRun {
  records: JsonRecord[];
  stderr: string;
  /** The workload's own output (stdout + stderr). */
  workloadLog: string;
  exitCode: number | null;
}

export interface RunOptions {
  /** Extra `watch` arguments, e.g. ["--policy", file]. */
  watchArgs?: string[];
  /** Shell run in the namespace before the sensor starts (e.g. to change what /proc shows). */
  beforeSensor?: string;
  /** A command the sensor runs under, e.g. setpriv to drop privileges. */
  sensorPrefix?: string[];
  /** Environment of the whole namespace (sensor and workload). */
  env?: Record<string, string>;
  /**
   * Called while the workload waits at `$SYNC wait` (see below), with the host PID of the
   * namespace's PID 1, e.g. to nsenter from outside.
   */
  whilePaused?: (hostPid: number) => Promise<void>;
  /** Also a fresh network namespace (`unshare --net`, loopback up): sockets and traffic stay inside it. */
  network?: boolean;
}

/**
 * The workload script runs in `sh` with `$WORK` (a scratch directory) and `$SYNC`: `$SYNC wait`
 * blocks until the test's whilePaused hook has finished.
 */
export async function runInPidNamespace(workload: string, options: RunOptions = {}): Promise<NamespaceRun> {
  const work = mkdtempSync(join(tmpdir(), "microenforcer-it-"));
  try {
    const out = join(work, "records.jsonl");
    const err = join(work, "sensor.err");
    const sync = join(work, "sync.sh");
    writeFileSync(
      sync,
      `#!/bin/sh\n# Blocks the workload until the test has done its part from outside.\ntouch "${work}/paused"\nwhile [ ! -e "${work}/resume" ]; do sleep 0.02; done\n`,
      { mode: 0o755 },
    );
    const watchArgs = ["watch", "--exporter", "stdout", "--format", "json", ...(options.watchArgs ?? [])].map(shellQuote).join(" ");
    // Wait for the sensor's trigger status: its startup scan is done and it is watching.
    // The harness's own sleeps have odd durations so that tests can match theirs exactly.
    const init = `
      ${options.network ? "ip link set lo up || exit 96" : ""}
      ${options.beforeSensor ?? ""}
      ${(options.sensorPrefix ?? []).map(shellQuote).join(" ")} env NODE_OPTIONS=${shellQuote(SIDECAR_NODE_OPTIONS)} ${shellQuote(process.execPath)} ${shellQuote(cli)} ${watchArgs} > ${out} 2> ${err} &
      SENSOR=$!
      n=0; until grep -q '"microenforcer.sensor.trigger"' ${out} 2>/dev/null; do
        n=$((n+1)); [ $n -gt 300 ] && { echo "sensor did not start" >&2; exit 97; }; sleep 0.0203
      done
      sleep 0.0987
      ( ${workload} ) > ${work}/workload.log 2>&1
      sleep 0.3012
      kill -INT $SENSOR; wait $SENSOR
    `;
    const namespaces = ["--pid", ...(options.network ? ["--net"] : []), "--fork", "--mount-proc", "--kill-child"];
    const child = spawn("unshare", [...namespaces, "sh", "-c", init], {
      env: { ...process.env, WORK: work, SYNC: sync, ...options.env },
      stdio: ["ignore", "inherit", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    if (options.whilePaused) {
      await until(() => existsSync(join(work, "paused")), 10_000, "the workload never reached $SYNC wait");
      await options.whilePaused(namespaceInitPid(child.pid!));
      writeFileSync(join(work, "resume"), "");
    }
    const exitCode = await exited;
    const text = existsSync(out) ? readFileSync(out, "utf8") : "";
    const records = text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as JsonRecord);
    return {
      records,
      stderr: stderr + (existsSync(err) ? readFileSync(err, "utf8") : ""),
      workloadLog: existsSync(join(work, "workload.log")) ? readFileSync(join(work, "workload.log"), "utf8") : "",
      exitCode,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Runs argv as a new PPID-0 process of the namespace, the way a runtime starts a container (or an exec session into it). */
export function inContainer(hostPid: number, container: string, argv: string[]): { output: Promise<string> } {
  const child = spawn(...intoCgroup(containerCgroup(container), ["nsenter", "-t", String(hostPid), "-p", "-m", "-n", "--", ...argv]), {
    env: { ...process.env, MICROENFORCER_CONTAINER: container },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  return { output: new Promise((resolve) => child.on("exit", () => resolve(out))) };
}

const cgroups = new Map<string, string>();

/**
 * The cgroup of a container, made on first use: a runtime gives each container its own, and the
 * sensor knows containers by their cgroup's id. In the v1 pids hierarchy, named by a 64-hex id
 * as runtimes name theirs, on a path longer than the machine's own (the sensor takes the most
 * specific v1 path); removed when the tests end.
 */
export function containerCgroup(container: string): string {
  let dir = cgroups.get(container);
  if (dir === undefined) {
    dir = join("/sys/fs/cgroup/pids/microenforcer-integration", randomBytes(32).toString("hex"));
    mkdirSync(dir, { recursive: true });
    cgroups.set(container, dir);
  }
  return dir;
}

/** Command and arguments for spawn that run argv in the cgroup: a shell moves itself in, then execs argv. */
export function intoCgroup(dir: string, [command, ...args]: string[]): [string, string[]] {
  return ["/bin/sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, command!, ...args]];
}

process.on("exit", () => {
  for (const dir of cgroups.values()) {
    try {
      rmdirSync(dir);
    } catch {
      // still in use by a process the test left behind: the kernel keeps it until it exits
    }
  }
});

/** unshare --fork's child is PID 1 inside; on the host it is unshare's only child. */
function namespaceInitPid(unsharePid: number): number {
  const children = readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, "utf8").trim().split(" ");
  return Number(children[0]);
}

export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export const execs = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.process.exec");
export const exits = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.process.exit");

/** Exec records whose argv equals `args` exactly. */
export function execsOf(run: NamespaceRun, ...args: string[]): JsonRecord[] {
  return execs(run).filter((r) => JSON.stringify(r.attributes["process.command_args"]) === JSON.stringify(args));
}
