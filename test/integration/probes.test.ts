/**
 * The kubelet's exec probes against the real kernel: started from outside the PID namespace
 * with PPID 0, like `kubectl exec`. The sidecar, handed the container's probes by the
 * injector's workload variable, records them as probes and never kills them under a
 * blocking containerExec; the same container's exec session with another argv is killed.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WORKLOAD_ENV } from "../../microenforcer/sidecar-contract.ts";
import { execs, inContainer, runInPidNamespace, until, type JsonRecord } from "./pid-namespace.ts";

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

  it("records a probe as a probe, never kills it under containerExec, and kills an exec session beside it", async () => {
    const policy = join(scratch, "policy.yaml");
    writeFileSync(
      policy,
      "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  enforcementMode: enforce\n  forensics: {probes: record}\n  controls: {containerExec: {block: true}}\n",
    );
    const outcomes: string[] = [];
    const run = await runInPidNamespace("$SYNC wait", {
      watchArgs: ["--policy", policy],
      env: { [WORKLOAD_ENV]: JSON.stringify({ resource: {}, containerImages: {}, probes: { app: [probe] } }) },
      whilePaused: async (hostPid) => {
        const started = join(scratch, "app-started");
        const app = inContainer(hostPid, "app", ["/bin/sh", "-c", `touch ${started}; sleep 3`]);
        await until(() => existsSync(started), 10_000, "the container's init started");
        // Seen as the container's init before the probes come.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const probes = [inContainer(hostPid, "app", probe), inContainer(hostPid, "app", probe)];
        const session = inContainer(hostPid, "app", ["/bin/sh", "-c", "sleep 0.4; echo survived"]);
        outcomes.push(...(await Promise.all([...probes.map((p) => p.output), session.output])));
        await app.output;
      },
    });
    assert.equal(run.exitCode, 0, run.stderr);
    const probeRecords = execs(run).filter((r) => attr(r, "microenforcer.exec.origin") === "probe");
    assert.equal(probeRecords.length, 2, execs(run).map((r) => r.body).join("\n"));
    const violations = run.records.filter((r) => r.eventName === "microenforcer.policy.violation");
    const probePids = new Set(probeRecords.map((r) => attr(r, "process.pid")));
    assert.ok(!violations.some((v) => probePids.has(attr(v, "process.pid"))), "no finding about a probe");
    const session = execs(run).find((r) => attr(r, "microenforcer.exec.origin") === "exec-session");
    assert.ok(session, execs(run).map((r) => r.body).join("\n"));
    const killed = violations.find((v) => attr(v, "process.pid") === attr(session, "process.pid"));
    assert.deepEqual([attr(killed!, "microenforcer.control"), attr(killed!, "microenforcer.action")], ["containerExec", "killed"]);
    assert.ok(!outcomes.some((o) => o.includes("survived")), "the exec session was killed before it printed");
  });
});
