/**
 * The programs complete-mode tests and benchmarks run under the preload library, built from
 * test/fixtures/preload/ with the compilers .ci/run installs: gcc (glibc, dynamic and static),
 * musl-gcc (Debian's musl-tools), aarch64-linux-gnu-gcc (run through qemu-aarch64-static).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { elfLinking } from "../../microenforcer/proc/elf.ts";

const source = (name: string): string => new URL(`../fixtures/preload/${name}`, import.meta.url).pathname;

export interface PreloadPrograms {
  /** main appends "ran" to argv[1], then sleeps argv[2] ms. */
  glibc: string;
  musl: string;
  static: string;
  aarch64: string;
  /** A library of the program's own, for LD_PRELOAD beside ours. */
  otherPreload: string;
  /** Threads, then posix_spawn (vfork) of argv[1..]. */
  spawner: string;
}

function cc(compiler: string, args: string[], what: string): void {
  try {
    execFileSync(compiler, args, { stdio: "pipe" });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    const hint = e.code === "ENOENT" ? `${compiler} is not installed (.ci/run installs it)` : String(e.stderr ?? e.message);
    throw new Error(`cannot build ${what}: ${hint}`, { cause: err });
  }
}

export function buildPreloadPrograms(dir: string): PreloadPrograms {
  const out = (name: string): string => join(dir, name);
  cc("gcc", ["-O2", "-o", out("marker-glibc"), source("marker.c")], "the glibc test program");
  cc("musl-gcc", ["-O2", "-o", out("marker-musl"), source("marker.c")], "the musl test program");
  cc("gcc", ["-O2", "-static", "-o", out("marker-static"), source("marker.c")], "the static test program");
  cc("aarch64-linux-gnu-gcc", ["-O2", "-o", out("marker-aarch64"), source("marker.c")], "the aarch64 test program");
  cc("gcc", ["-O2", "-shared", "-fPIC", "-o", out("libother.so"), source("other-preload.c")], "the other preload library");
  cc("gcc", ["-O2", "-pthread", "-o", out("spawner"), source("spawner.c")], "the spawner");
  return {
    glibc: out("marker-glibc"),
    musl: out("marker-musl"),
    static: out("marker-static"),
    aarch64: out("marker-aarch64"),
    otherPreload: out("libother.so"),
    spawner: out("spawner"),
  };
}

/** The dynamic loader a program names (PT_INTERP), its symlinks resolved: glibc's ld.so, or musl's libc.so. */
export function loaderOf(program: string): string {
  const linking = elfLinking(readFileSync(program).subarray(0, 4096));
  if (linking.kind !== "dynamic") throw new Error(`${program} names no loader`);
  return realpathSync(linking.interpreter);
}
