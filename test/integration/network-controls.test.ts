/**
 * The policy's network controls on real connections: blocked destinations and listening
 * ports, and port scans, recorded in audit mode and killed in enforce mode.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInPidNamespace, type JsonRecord, type NamespaceRun } from "./pid-namespace.ts";
import { py, truths } from "../fixtures/net/workload.ts";

const violations = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.policy.violation");
const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const show = (run: NamespaceRun): string => violations(run).map((r) => r.body).join("\n") || "no violations";

describe("network controls on real connections", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "microenforcer-netpolicy-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  function policy(mode: "audit" | "enforce", controls: string): string[] {
    const file = join(dir, `${mode}-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: net-${mode}}\nspec:\n  enforcementMode: ${mode}\n  controls:\n${controls}`);
    return ["--policy", file];
  }

  /** A listener on HOST:PORT in the background, ready when the workload goes on. */
  const listener = (host: string, port: number): string => `${py} listen tcp ${host} ${port} $WORK/l${port} &\nuntil [ -s $WORK/l${port} ]; do sleep 0.01; done\n`;

  it("audit mode: a connection to a blocked port is a violation record, and the process goes on", async () => {
    const run = await runInPidNamespace(`${listener("127.0.0.1", 3333)}${py} connect tcp 127.0.0.1 3333 0.2; echo "status=$?"; touch $WORK/l3333.stop; wait`, {
      network: true,
      watchArgs: policy("audit", "    network: {blockedOutbound: [{port: 3333}]}\n"),
    });
    assert.match(run.workloadLog, /status=0/);
    const [client] = truths(run.workloadLog);
    const found = violations(run);
    assert.equal(found.length, 1, show(run));
    const v = found[0]!;
    assert.equal(v.severityText, "WARN");
    assert.equal(attr(v, "microenforcer.control"), "network");
    assert.equal(attr(v, "microenforcer.rule"), "port=3333");
    assert.equal(attr(v, "microenforcer.action"), "alert");
    assert.equal(attr(v, "process.pid"), client!.pid);
    assert.match(v.body, /outbound tcp connection to 127\.0\.0\.1:3333 is blocked/);
  });

  it("records a violation for each blocked connection seen only after its process closed it", async () => {
    const run = await runInPidNamespace(`${listener("127.0.0.1", 3334)}${py} connect tcp 127.0.0.1 3334 0 10; touch $WORK/l3334.stop; wait`, {
      network: true,
      watchArgs: policy("audit", "    network: {blockedOutbound: [{port: 3334}]}\n"),
    });
    const outbound = run.records.filter((r) => r.eventName === "microenforcer.network.connection" && attr(r, "network.peer.port") === 3334);
    const closed = outbound.filter((r) => attr(r, "microenforcer.network.attribution") !== "process");
    assert.ok(closed.length >= 1, "at least one connection seen only after its close");
    // One finding per unattributed connection; the attributed ones are one process, one finding.
    const unattributed = violations(run).filter((v) => attr(v, "process.pid") === undefined);
    assert.equal(unattributed.length, closed.length, show(run));
    assert.equal(violations(run).length - unattributed.length, closed.length < outbound.length ? 1 : 0, show(run));
    for (const v of unattributed) {
      assert.equal(attr(v, "microenforcer.action"), "alert");
      assert.match(v.body, /outbound tcp connection to 127\.0\.0\.1:3334 is blocked \(unattributed/);
    }
  });

  it("enforce mode: the process connecting to a blocked CIDR is killed", async () => {
    const run = await runInPidNamespace(`${listener("127.0.0.2", 8082)}${py} connect tcp 127.0.0.2 8082 5; echo "status=$?"; touch $WORK/l8082.stop; wait`, {
      network: true,
      watchArgs: policy("enforce", "    network: {blockedOutbound: [{cidr: 127.0.0.2/32}]}\n"),
    });
    assert.match(run.workloadLog, /status=137/, show(run));
    const [client] = truths(run.workloadLog);
    const [v] = violations(run);
    assert.equal(attr(v!, "microenforcer.action"), "killed");
    assert.equal(attr(v!, "microenforcer.rule"), "cidr=127.0.0.2/32");
    assert.equal(attr(v!, "process.pid"), client!.pid);
    assert.equal(v!.severityText, "ERROR");
    assert.ok(Number(attr(v!, "microenforcer.enforcement.latency_ms")) < 1000);
  });

  it("enforce mode: a process listening on a blocked port is killed", async () => {
    const run = await runInPidNamespace(`${py} listen tcp 0.0.0.0 2323 $WORK/telnet; echo "status=$?"`, {
      network: true,
      watchArgs: policy("enforce", "    network: {blockedListenPorts: [2323]}\n"),
    });
    assert.match(run.workloadLog, /status=137/, show(run));
    const [v] = violations(run);
    assert.equal(attr(v!, "microenforcer.rule"), "blockedListenPorts=2323");
    assert.equal(attr(v!, "microenforcer.action"), "killed");
  });

  it("detects a port scan: one process reaching more distinct ports than allowed within the window", async () => {
    const ports = [9001, 9002, 9003, 9004, 9005];
    const run = await runInPidNamespace(`${ports.map((p) => listener("127.0.0.1", p)).join("")}${py} scan 127.0.0.1 0.08 ${ports.join(" ")}; echo "status=$?"; ${ports.map((p) => `touch $WORK/l${p}.stop`).join("; ")}; wait`, {
      network: true,
      watchArgs: policy("audit", "    portScan: {detect: true, distinctPorts: 4, windowSeconds: 10}\n"),
    });
    assert.match(run.workloadLog, /status=0/);
    const scans = violations(run).filter((r) => attr(r, "microenforcer.control") === "portScan");
    assert.equal(scans.length, 1, show(run));
    assert.equal(attr(scans[0]!, "process.pid"), truths(run.workloadLog)[0]!.pid);
    assert.match(scans[0]!.body, /reached 4 distinct destinations within 10 s/);
  });
});
