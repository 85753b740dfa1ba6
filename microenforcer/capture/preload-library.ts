/**
 * The preload library from the sidecar's side: the files the build makes, the names it has
 * in the pod, the mode a policy gives it, and its installation into the shared emptyDir the
 * app containers mount read-only.
 */
import { chmodSync, copyFileSync, existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import type { RuntimePolicy } from "../../policies/schema.ts";
import { elfMachines } from "../proc/elf.ts";
import { EXEC_SOCKET_FILE, PRELOAD_LIBRARY_FILE } from "../sidecar-contract.ts";
import { writeLibraryMode, type LibraryMode } from "./exec-report-server.ts";


/** What the library does, as the policy says (see preload/README.md): it waits only in enforce mode. */
export function libraryMode(policy: RuntimePolicy): LibraryMode {
  const { enforcementMode, forensics, verdict } = policy.spec;
  return { enforce: enforcementMode === "enforce" && forensics.preload, failure: verdict.failure, timeoutMs: verdict.timeoutMs };
}

const machines: Partial<Record<NodeJS.Architecture, keyof typeof elfMachines>> = { x64: "x86_64", arm64: "aarch64" };

/** ELF e_machine of the library this sidecar installs (its own architecture's). */
export function libraryMachine(arch: NodeJS.Architecture = process.arch): number {
  const machine = machines[arch];
  return machine === undefined ? -1 : elfMachines[machine];
}

/** The build's library for a Node architecture name (`npm run build`, preload/build.sh). */
export function builtLibrary(arch: NodeJS.Architecture = process.arch): string {
  const machine = machines[arch];
  if (machine === undefined) throw new Error(`the preload library is built for x86_64 and aarch64 only, not ${arch}`);
  // dist/microenforcer/capture/ when compiled; microenforcer/capture/ (beside dist/) in tests.
  const dist = new URL(import.meta.url.endsWith(".ts") ? "../../dist/" : "../../", import.meta.url);
  return new URL(`preload/${machine}/${PRELOAD_LIBRARY_FILE}`, dist).pathname;
}

/**
 * Copies the library into dir beside its mode file; returns the installed path. The mode is
 * written first and the library under a temporary name then renamed, so a program that finds
 * the library finds its mode, and never loads half a file.
 */
export function installLibrary(dir: string, mode: LibraryMode): string {
  const source = builtLibrary();
  if (!existsSync(source)) throw new Error(`${source} missing: this build has no preload library (npm run build makes it)`);
  writeLibraryMode(join(dir, EXEC_SOCKET_FILE), mode);
  const target = join(dir, PRELOAD_LIBRARY_FILE);
  const tmp = join(dir, `.${PRELOAD_LIBRARY_FILE}.tmp`);
  copyFileSync(source, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return target;
}
