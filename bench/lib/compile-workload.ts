/** Builds the C workload (probe and launcher) the process benchmarks run. */
import { execFileSync } from "node:child_process";
import { join } from "node:path";

const source = (name: string): string => new URL(`../workload/${name}`, import.meta.url).pathname;

export function compileWorkload(dir: string): { probe: string; launcher: string } {
  const probe = join(dir, "probe");
  const launcher = join(dir, "launcher");
  // Static: no dynamic loader between exec and main, so a 1 ms probe lives about 1 ms.
  try {
    execFileSync("gcc", ["-O2", "-static", "-o", probe, source("probe.c")], { stdio: "pipe" });
  } catch {
    execFileSync("gcc", ["-O2", "-o", probe, source("probe.c")], { stdio: "inherit" });
  }
  execFileSync("gcc", ["-O2", "-o", launcher, source("launcher.c")], { stdio: "inherit" });
  return { probe, launcher };
}
