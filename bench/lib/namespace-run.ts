/**
 * One measured run: a watcher (the sensor or the baseline) and the workload together in a
 * fresh PID namespace, driven by ns-run.sh as its PID 1. Returns the raw files it left.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { countExecs, startForkstat, type ExecCounts } from "./forkstat.ts";

export interface RunSpec {
  name: string;
  dir: string;
  idleSeconds: number;
  launcher: string;
  probe: string;
  /** `<class>:<lifetime_us>:<count>:<spacing_us>`, run one after another. */
  classes: string[];
  watcher: string[];
  forkstat: boolean;
  /** NAME=VALUE pairs for the workload's environment only (no spaces in them). */
  workloadEnv?: string[];
}

export interface RunFiles {
  records: string;
  probes: string;
  idleStart: string;
  idleEnd: string;
  loadStart: string;
  loadEnd: string;
  statusIdle: string;
  statusLoad: string;
  watcherErr: string;
  forkstat?: ExecCounts;
}

const nsRunScript = new URL("./ns-run.sh", import.meta.url).pathname;

export async function runInNamespace(spec: RunSpec): Promise<RunFiles> {
  mkdirSync(spec.dir, { recursive: true });
  const forkstatFile = join(spec.dir, "forkstat.txt");
  const forkstat = spec.forkstat ? await startForkstat(forkstatFile) : undefined;
  // --kill-child: if we die or time out, PID 1 dies and the kernel kills the whole namespace.
  const args = ["--pid", "--fork", "--mount-proc", "--kill-child", "sh", nsRunScript, spec.dir, String(spec.idleSeconds)];
  args.push(spec.launcher, spec.probe, spec.classes.join(" "), "--", ...spec.watcher);
  const env = { ...process.env, WORKLOAD_ENV: (spec.workloadEnv ?? []).join(" ") };
  const child = spawn("unshare", args, { stdio: ["ignore", "inherit", "inherit"], env });
  const timeout = setTimeout(() => child.kill("SIGKILL"), (spec.idleSeconds + 120) * 1000);
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null];
  clearTimeout(timeout);
  await forkstat?.stop();
  if (code !== 0) throw new Error(`${spec.name} run failed: unshare/ns-run.sh exited with ${signal ?? code}`);

  const read = (file: string): string => readFileSync(join(spec.dir, file), "utf8");
  const files: RunFiles = {
    records: read("records.jsonl"),
    probes: read("probes.log"),
    idleStart: read("idle-start.stat"),
    idleEnd: read("idle-end.stat"),
    loadStart: read("load-start.stat"),
    loadEnd: read("load-end.stat"),
    statusIdle: read("status-idle.txt"),
    statusLoad: read("status-load.txt"),
    watcherErr: read("watcher.err"),
  };
  if (forkstat !== undefined && child.pid !== undefined) {
    files.forkstat = countExecs(read("forkstat.txt"), child.pid, spec.launcher);
  }
  return files;
}
