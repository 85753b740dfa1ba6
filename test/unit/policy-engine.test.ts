import assert from "node:assert/strict";
import type { KillOutcome } from "../../microenforcer/enforce/kill.ts";
import { PolicyEngine, type EngineResult, type FactSource } from "../../microenforcer/policy/engine.ts";
import { PolicyHolder } from "../../microenforcer/policy/policy-holder.ts";
import { violationRecord } from "../../microenforcer/records/violation-records.ts";
import type { Stdio } from "../../microenforcer/proc/process-facts.ts";
import { parsePolicies } from "../../policies/load.ts";
import { processInfo } from "./process-fixture.ts";

const policy = (mode: string, controls: string) =>
  parsePolicies(`apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p, generation: 3}\nspec:\n  enforcementMode: ${mode}\n  controls: ${controls}\n`, "p.yaml")[0]!;

const shell = processInfo({
  pid: 77,
  startTicks: 500,
  comm: "sh",
  exe: { path: "/tmp/nc", deleted: true, memfd: false },
  args: ["sh"],
  uid: 0,
  euid: 0,
  origin: "exec-session",
});

const clock = { bootMs: 1_700_000_000_000, ticksPerSecond: 100 };

const denied = (): never => {
  throw Object.assign(new Error("EACCES"), { code: "EACCES" });
};

function setup(mode: string, controls: string, facts: Partial<FactSource> = {}) {
  const kills: number[] = [];
  const inForce = new PolicyHolder(policy(mode, controls));
  const engine = new PolicyEngine(inForce, {
    facts: { stdio: () => ({ targets: [], inet: new Map() }), denial: () => undefined, ...facts },
    enforcer: {
      kill: (pid): KillOutcome => {
        kills.push(pid);
        return "killed";
      },
    },
    clock,
    now: () => 1000,
  });
  /** The engine's violations as the pipeline records them. */
  const asRecords = (result: EngineResult) => ({ records: result.violations.map((v) => violationRecord(v, inForce.current, clock)), problems: result.problems });
  return { engine, kills, asRecords, inForce };
}

describe("PolicyEngine", () => {
  const controls = "{containerExec: {}, executables: {blocked: ['/tmp/*']}, filelessExec: {block: false}}";

  it("in audit mode records every finding as an alert and kills nothing", () => {
    const { engine, kills, asRecords } = setup("audit", controls);
    const { records } = asRecords(engine.onExec(shell, 990, undefined));
    assert.deepEqual(records.map((r) => [r.attributes["microenforcer.control"], r.attributes["microenforcer.action"], r.severity]), [
      ["containerExec", "alert", "WARN"],
      ["executables", "alert", "WARN"],
      ["filelessExec", "alert", "WARN"],
    ]);
    assert.deepEqual(kills, []);
    assert.equal(records[0]!.attributes["microenforcer.policy.name"], "p");
  });

  it("in enforce mode kills once for all blocking findings and records the latency; block: false stays an alert", () => {
    const { engine, kills, asRecords } = setup("enforce", controls);
    const { records } = asRecords(engine.onExec(shell, 990, undefined));
    assert.deepEqual(kills, [77]);
    assert.deepEqual(records.map((r) => r.attributes["microenforcer.action"]), ["killed", "killed", "alert"]);
    assert.equal(records[0]!.severity, "ERROR");
    assert.equal(records[0]!.attributes["microenforcer.enforcement.latency_ms"], 10);
    assert.equal(records[2]!.attributes["microenforcer.enforcement.latency_ms"], undefined);
  });

  it("reports a finding once per process, again for a new process on the same PID", () => {
    const { engine, asRecords } = setup("audit", "{executables: {blocked: ['/tmp/*']}}");
    assert.equal(asRecords(engine.onExec(shell, 0, undefined)).records.length, 1);
    assert.equal(asRecords(engine.onExec(shell, 0, undefined)).records.length, 0);
    engine.onExit(shell);
    assert.equal(asRecords(engine.onExec({ ...shell, startTicks: 900 }, 0, undefined)).records.length, 1);
  });

  it("watches interpreters and flags them when their stdio turns into a socket", () => {
    let stdio: Stdio = { targets: ["pipe:[1]", "pipe:[2]", "pipe:[2]"], inet: new Map() };
    const { engine, kills, asRecords } = setup("enforce", "{reverseShell: {}}", { stdio: () => stdio });
    const bash = { ...shell, comm: "bash", exe: { path: "/usr/bin/bash", deleted: false, memfd: false }, origin: "child" as const };
    assert.deepEqual(asRecords(engine.onExec(bash, 0, undefined)).records, []);
    assert.ok(engine.watchingInterpreters);
    stdio = { targets: ["socket:[5]", "pipe:[2]", "pipe:[2]"], inet: new Map([[0, "tcp/10.0.0.9:4444"]]) };
    const { records } = asRecords(engine.recheck());
    assert.equal(records[0]?.attributes["microenforcer.control"], "reverseShell");
    assert.deepEqual(kills, [77]);
    engine.onExit(bash);
    assert.ok(!engine.watchingInterpreters);
  });

  it("returns what it may not read as problems instead of findings", () => {
    const { engine, asRecords } = setup("enforce", "{drift: {}, reverseShell: {}}", { stdio: denied });
    const bash = { ...shell, comm: "bash", exe: { path: "/usr/bin/bash", deleted: false, memfd: false }, euid: 1000 };
    const { records, problems } = asRecords(engine.onExec(bash, 0, 100));
    assert.deepEqual(records, []);
    assert.deepEqual(problems.map((p) => `${p.problem.file}:${p.problem.code}:${p.problem.uid}`), ["fd:EACCES:1000"]);
  });

  it("decides drift and a reverse shell from what the capture worker first saw, reading nothing again", () => {
    const { engine, kills, asRecords } = setup("enforce", "{drift: {}, reverseShell: {}}", { stdio: denied });
    const containerStart = 100; // ticks: 1 s after boot
    const dropped = {
      ...shell,
      comm: "sh",
      exe: { path: "/usr/bin/kworker", deleted: true, memfd: false },
      // Gone from the disk by now; its identity was read through the exe link at first sight.
      exeFile: { device: "0:42", inode: 77, ctimeMs: clock.bootMs + 3500, mode: 0o100755 },
      stdio: { targets: ["socket:[31]", "socket:[31]", "pipe:[4]"], inet: new Map([[0, "tcp/10.0.0.9:4444"], [1, "tcp/10.0.0.9:4444"]]) },
    };
    const { records, problems } = asRecords(engine.onExec(dropped, 990, containerStart));
    assert.deepEqual(problems, []);
    assert.deepEqual(records.map((r) => [r.attributes["microenforcer.control"], r.attributes["microenforcer.action"]]), [
      ["drift", "killed"],
      ["reverseShell", "killed"],
    ]);
    assert.match(records[0]!.body, /\/usr\/bin\/kworker was created or changed 2\.5 s after its container started/);
    assert.deepEqual(kills, [77]);
  });

  it("applies a new policy from the next event on", () => {
    const { engine, kills, inForce } = setup("audit", "{executables: {blocked: ['/tmp/*']}}");
    engine.onExec(shell, 0, undefined);
    inForce.set(policy("enforce", "{executables: {blocked: ['/tmp/*']}}"));
    engine.onExec({ ...shell, pid: 78 }, 0, undefined);
    assert.deepEqual(kills, [78]);
  });
  it("records a blocked connection whose process was gone before the sensor saw it, once per rule, with nothing to kill", () => {
    const { engine, kills, asRecords } = setup("enforce", "{network: {blockedOutbound: [{cidr: 10.0.0.0/8}, {domain: '*.pool.example'}]}}");
    const closed = { direction: "outbound" as const, transport: "tcp" as const, localAddress: "10.1.0.5", localPort: 40000, peerAddress: "10.0.0.9", peerPort: 3333 };
    const [first, ...rest] = asRecords(engine.onUnattributedConnection(closed, 990)).records;
    assert.deepEqual(rest, []);
    assert.equal(first!.attributes["microenforcer.action"], "gone");
    assert.equal(first!.attributes["microenforcer.rule"], "cidr=10.0.0.0/8");
    assert.equal(first!.attributes["process.pid"], undefined);
    assert.match(first!.body, /outbound tcp connection to 10\.0\.0\.9:3333 is blocked \(unattributed/);
    // Again once the peer's name is known: reported once all the same.
    assert.deepEqual(asRecords(engine.onUnattributedConnection({ ...closed, dnsName: "a.pool.example" }, 990)).records, []);
    // A peer only its name makes blocked: found when the name arrives.
    const elsewhere = { ...closed, peerAddress: "192.0.2.7" };
    assert.deepEqual(asRecords(engine.onUnattributedConnection(elsewhere, 990)).records, []);
    const named = asRecords(engine.onUnattributedConnection({ ...elsewhere, dnsName: "a.pool.example" }, 990)).records;
    assert.deepEqual(named.map((r) => r.attributes["microenforcer.rule"]), ["domain=*.pool.example"]);
    assert.deepEqual(asRecords(engine.onUnattributedConnection({ ...closed, localPort: 40002 }, 990)).records.length, 1, "another connection");
    assert.deepEqual(kills, []);
    const audited = setup("audit", "{network: {blockedOutbound: [{port: 3333}]}}");
    const audit = audited.asRecords(audited.engine.onUnattributedConnection(closed, 990)).records;
    assert.equal(audit[0]!.attributes["microenforcer.action"], "alert");
  });
});
