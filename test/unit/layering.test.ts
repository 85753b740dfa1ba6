/**
 * The sidecar's layers depend downward only: every import in microenforcer/ goes to its own
 * layer or one listed before it. A new module goes into the layer of what it does; an import
 * this test refuses means a type or a function lives in the wrong layer (move it down to the
 * module that produces it), not that the list needs another exception.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const repo = new URL("../../", import.meta.url).pathname;
const root = join(repo, "microenforcer/");

/** Lowest first. A folder, or a top-level file; a layer may import itself and anything above it here. */
const layers: ReadonlyArray<readonly string[]> = [
  // What the injector and the sidecar agree on, and the package version: import nothing of ours.
  ["sidecar-contract.ts", "version.ts"],
  // /proc parsers and synchronous readers: processes, socket tables, the boot clock.
  ["proc"],
  // The socket sensor the capture worker runs (change detector, inode owners, connection
  // reporter, sampler), and peer names (DNS forwarder, caches, the service run by policy).
  ["net"],
  // The capture worker: PID trigger, process watch, check schedule, socket-sensor host, gap
  // counter, the event and message contract with the main thread; the exec-report server.
  ["capture"],
  // Process facts on the main thread: container, origin, exec sessions; the process table.
  ["tracker"],
  // SIGKILL of exactly the process a finding was about.
  ["enforce"],
  // The RuntimePolicy held and applied: pure controls, the engine, the policy holder.
  ["policy"],
  // The backlog where records wait for the backend: on disk, or in memory. A leaf.
  ["spool"],
  // The sidecar's own runs: the state file one run leaves the next (tamper evidence).
  ["lifecycle"],
  // Attribute keys and every record builder (and command-line redaction).
  ["records"],
  // OpenTelemetry emitter, OTLP delivery, stdout.
  ["emit"],
  // The main-thread stages joined: capture events → tracker → policy → records.
  ["pipeline"],
  // `policy test`: recorded records read back, their facts rebuilt, replayed through the engine.
  ["replay"],
  // The program: startWatch, the `watch` command and its startup-probe endpoint.
  ["watch.ts", "watch-command.ts", "preload-command.ts", "started-endpoint.ts"],
];

function layerOf(file: string): number {
  const first = relative(root, file).split("/")[0]!;
  const rank = layers.findIndex((names) => names.includes(first));
  assert.ok(rank >= 0, `${relative(root, file)} is in no layer: add its folder to the list in test/unit/layering.test.ts`);
  return rank;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function importsOf(text: string): string[] {
  const specifiers: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+"(\.[^"]+)"|import\(\s*"(\.[^"]+)"\s*\)/g)) {
    specifiers.push((match[1] ?? match[2])!);
  }
  return specifiers;
}

describe("layering of microenforcer/", () => {
  it("finds static, type-only, re-exported and dynamic imports", () => {
    const text = 'import { a } from "./a.ts";\nimport type {\n  B,\n} from "../b/b.ts";\nexport { c } from "./c.ts";\nconst d = await import("./d.ts");\nimport x from "node:fs";\n';
    assert.deepEqual(importsOf(text), ["./a.ts", "../b/b.ts", "./c.ts", "./d.ts"]);
  });

  it("has no import from a lower layer to a higher one", () => {
    const upward: string[] = [];
    for (const file of sources(root)) {
      const from = layerOf(file);
      for (const specifier of importsOf(readFileSync(file, "utf8"))) {
        const target = resolve(dirname(file), specifier);
        if (!target.startsWith(root)) continue; // policies/: the RuntimePolicy contract, below every layer
        const to = layerOf(target);
        if (to > from) upward.push(`${relative(root, file)} (${layers[from]!.join(", ")}) → ${relative(root, target)} (${layers[to]!.join(", ")})`);
      }
    }
    assert.deepEqual(upward, []);
  });

  it("lets the injector and the policy loader see only the sidecar's contract", () => {
    // The injector's own records (kubectl exec sessions) go out as the sidecar's do: the
    // record contract (keys, event names, command-line redaction) and the emitter.
    const injectorMay = (target: string) =>
      ["sidecar-contract.ts", "version.ts", "records/attributes.ts", "records/record.ts", "records/redact.ts", "records/security-rule.ts", "emit/emitter.ts", "emit/resource.ts"].some((allowed) => target === join(root, allowed));
    const reaching: string[] = [];
    for (const [dir, may] of [["webhook", injectorMay], ["policies", (target: string) => target === join(root, "sidecar-contract.ts")]] as const) {
      for (const file of sources(join(repo, dir))) {
        for (const specifier of importsOf(readFileSync(file, "utf8"))) {
          const target = resolve(dirname(file), specifier);
          if (target.startsWith(root) && !may(target)) reaching.push(`${relative(repo, file)} → ${relative(repo, target)}`);
        }
      }
    }
    assert.deepEqual(reaching, []);
  });
});
