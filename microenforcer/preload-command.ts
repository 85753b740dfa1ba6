/**
 * `microenforcer preload install --dir DIR [--policy FILE]`: the injector's init container.
 * Puts the preload library for this machine into the shared emptyDir before any app
 * container starts, with the mode the policy sets (the sidecar keeps it in step afterwards).
 */
import { parseArgs } from "node:util";
import { InputError } from "../policies/input-error.ts";
import { defaultPolicy, readPolicyText } from "../policies/load.ts";
import { unverifiedPolicy } from "../policies/signed-document.ts";
import { installLibrary, libraryMode } from "./capture/preload-library.ts";

const usage = "usage: microenforcer preload install --dir DIR [--policy FILE]\n";

export async function runPreload(args: string[]): Promise<number> {
  let dir: string | undefined;
  let policyFile: string | undefined;
  try {
    const { values, positionals } = parseArgs({ args, options: { dir: { type: "string" }, policy: { type: "string" } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1 || positionals[0] !== "install" || values.dir === undefined) throw new Error("expected: install --dir DIR");
    dir = values.dir;
    policyFile = values.policy;
  } catch (err) {
    process.stderr.write(`microenforcer preload: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  try {
    // The injector's document is signed; the sidecar checks it and rewrites the mode before any app starts.
    const policy = policyFile === undefined ? defaultPolicy() : unverifiedPolicy(readPolicyText(policyFile), policyFile);
    const mode = libraryMode(policy);
    const installed = installLibrary(dir, mode);
    process.stdout.write(`installed ${installed} (${mode.enforce ? "enforce" : "audit"}, failure ${mode.failure}, ${mode.timeoutMs} ms)\n`);
    return 0;
  } catch (err) {
    const problems = err instanceof InputError ? err.problems.join("\n  ") : (err as Error).message;
    process.stderr.write(`microenforcer preload install: ${problems}\n`);
    return 1;
  }
}
