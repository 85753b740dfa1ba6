/**
 * The kubelet's exec probes and `kubectl debug` against the real kernel: both start from
 * outside the PID namespace with PPID 0, like `kubectl exec`. The sidecar, handed the
 * container's probes by the injector's workload variable, records them as probes and never
 * kills them under a blocking containerExec; the same container's exec session with another
 * argv is killed, and so is the first process of a container the injector never admitted.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { CONTAINER_ENV, WORKLOAD_ENV } from "../../microenforcer/sidecar-contract.ts";
import { containerCgroup, execs, inContainer, intoCgroup, runInPidNamespace, until, type JsonRecord } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const probe = ["/bin/sh", "-c", "sleep 0.4"];

describe("exec probes against the real kernel", function () {
  this.timeout(60_000);
  let scratch: string;

  before(function () {
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare, nsenter)");
    scratch = mkdtempSync(join(tmpdir(), "microenforcer-probes-"));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  /**
   * Runs argv as a PPID-0 process of the namespace the way runc does for the kubelet's probes,
   * `kubectl exec` and a new container: as runc's own init (nsenter's child, named like runc's
   * `runc:[2:INIT]`) that then execs the command, with the container's environment, in the
   * container's cgroup (a debug container has one of its own).
   */
  function viaRuntime(hostPid: number, container: string | undefined, argv: string[]): Promise<string> {
    const runcInit = join(scratch, "runc:[2:INIT]");
    if (!existsSync(runcInit)) copyFileSync("/usr/bin/nsenter", runcInit);
    const { [CONTAINER_ENV]: _inherited, ...env } = process.env;
    const child = spawn(...intoCgroup(containerCgroup(container ?? "debug"), [runcInit, "-t", String(hostPid), "-p", "-m", "-n", "--", ...argv]), {
      env: container === undefined ? env : { ...env, [CONTAINER_ENV]: container },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    return new Promise((resolve) => child.on("exit", () => resolve(out)));
  }

  it("records a probe as a probe, never kills it under containerExec, and kills an exec session and a debug container beside it", async () => {
    const policy = join(scratch, "policy.yaml");
    writeFileSync(
      policy,
      "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  enforcementMode: enforce\n  forensics: {probes: record}\n  controls: {containerExec: {block: true}}\n",
    );
    const outcomes: string[] = [];
    const run = await runInPidNamespace("$SYNC wait", {
      watchArgs: ["--policy", policy],
      env: { [WORKLOAD_ENV]: JSON.stringify({ resource: {}, containerImages: { app: "shop/api:1" }, probes: { app: [probe] } }) },
      whilePaused: async (hostPid) => {
        const started = join(scratch, "app-started");
        const app = inContainer(hostPid, "app", ["/bin/sh", "-c", `touch ${started}; sleep 3`]);
        await until(() => existsSync(started), 10_000, "the container's init started");
        // Seen as the container's init before the probes come.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const probes = [viaRuntime(hostPid, "app", probe), viaRuntime(hostPid, "app", probe)];
        const session = viaRuntime(hostPid, "app", ["/bin/sh", "-c", "sleep 0.4; echo survived"]);
        // `kubectl debug`: an ephemeral container, started with its image's environment only.
        const debug = viaRuntime(hostPid, undefined, ["/bin/sh", "-c", "sleep 0.4; echo debugged"]);
        outcomes.push(...(await Promise.all([...probes, session, debug])));
        await app.output;
      },
    });
    assert.equal(run.exitCode, 0, run.stderr);
    const probeRecords = execs(run).filter((r) => attr(r, "microenforcer.exec.origin") === "probe");
    assert.equal(probeRecords.length, 2, execs(run).map((r) => r.body).join("\n"));
    const violations = run.records.filter((r) => r.eventName === "microenforcer.policy.violation");
    const probePids = new Set(probeRecords.map((r) => attr(r, "process.pid")));
    assert.ok(!violations.some((v) => probePids.has(attr(v, "process.pid"))), "no finding about a probe");
    // One per session root (nsenter's exec of the command in place is a second record of the same process).
    const sessions = execs(run).filter((r) => attr(r, "microenforcer.exec.origin") === "exec-session" && attr(r, "microenforcer.exec.in_place") !== true);
    const names = sessions.map((r) => attr(r, "k8s.container.name"));
    assert.deepEqual(names.sort(), ["app", undefined], execs(run).map((r) => r.body).join("\n"));
    for (const session of sessions) {
      const killed = violations.find((v) => attr(v, "process.pid") === attr(session, "process.pid"));
      assert.deepEqual([attr(killed!, "microenforcer.control"), attr(killed!, "microenforcer.action")], ["containerExec", "killed"], session.body);
    }
    assert.ok(!outcomes.some((o) => o.includes("survived") || o.includes("debugged")), "the exec session and the debug container were killed before they printed");
  });
});
