import assert from "node:assert/strict";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import { networkRecord } from "../../microenforcer/records/network-records.ts";
import { processRecord } from "../../microenforcer/records/process-records.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { recordedClock } from "../../microenforcer/replay/recorded-facts.ts";
import type { RecordedRecord } from "../../microenforcer/replay/recorded.ts";
import { blockedFindings, formatJson, formatText } from "../../microenforcer/replay/replay-report.ts";
import { PolicyReplay } from "../../microenforcer/replay/replay.ts";
import type { ProcessInfo } from "../../microenforcer/tracker/process-tracker.ts";
import { defaultPolicy, parsePolicies } from "../../policies/load.ts";
import { processInfo } from "./process-fixture.ts";

const policy = (mode: string, controls: string, extra = "") =>
  parsePolicies(`apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: candidate}\nspec:\n  enforcementMode: ${mode}\n  controls: ${controls}\n${extra}`, "p.yaml")[0]!;

const t0 = Date.parse("2026-11-26T13:41:52.000Z");
const forensics = defaultPolicy().spec.forensics;
const podA = { "k8s.pod.uid": "uid-a", "k8s.pod.name": "api-1", "k8s.namespace.name": "payments" };
const podB = { "k8s.pod.uid": "uid-b", "k8s.pod.name": "api-2", "k8s.namespace.name": "payments" };

let ids = 0;
/** A record as the sensor printed it (with its id), read back. */
function recorded(r: SensorRecord, resource: Record<string, unknown> = podA, id = `id-${++ids}`): RecordedRecord {
  return { eventName: r.eventName, observedMs: r.observedTimestamp ?? r.timestamp, body: r.body, attributes: { ...r.attributes, "microenforcer.record.id": id }, resource };
}
const exec = (p: ProcessInfo, at = t0, over: Partial<typeof forensics> = {}) =>
  recorded(processRecord({ kind: "exec", process: p, inPlace: false, observedAt: at }, recordedClock, { ...forensics, ...over })!);
const exit = (p: ProcessInfo, at = t0) => recorded(processRecord({ kind: "exit", process: p, observedAt: at }, recordedClock, forensics)!);

const nc = processInfo({ pid: 212, startTicks: t0 - 10, comm: "nc", exe: { path: "/usr/bin/nc", deleted: false, memfd: false }, args: ["nc", "-l", "-p", "4444"] });

function outbound(peer: string, port: number, p?: ProcessInfo, at = t0): RecordedRecord {
  const observation: NetworkObservation = {
    kind: "connection",
    direction: "outbound",
    socket: { transport: "tcp", family: "ipv4", localAddress: "10.0.0.5", localPort: 40000 + port, remoteAddress: peer, remotePort: port, state: "ESTABLISHED", uid: 1000, inode: p ? 900 + port : 0, row: "" },
    attribution: p ? "process" : "closed",
    detection: "change",
  };
  return recorded(networkRecord({ observation, observedAt: at, ...(p && { process: p }) }, recordedClock, forensics));
}

function replay(candidate: ReturnType<typeof policy>, records: RecordedRecord[]) {
  const r = new PolicyReplay(candidate);
  for (const record of records) r.add(record);
  return r.result();
}

describe("policy replay", () => {
  it("finds what the sensor's controls find, and says an enforce policy would kill it", () => {
    const result = replay(policy("enforce", "{executables: {blocked: ['**/nc']}}"), [exec(nc), exec(processInfo({ pid: 300, startTicks: t0 }))]);
    assert.deepEqual(
      result.rules.map((r) => [r.control, r.rule, r.findings, r.actions]),
      [["executables", "**/nc", 1, { killed: 1 }]],
    );
    assert.equal(result.processesKilled, 1);
    assert.equal(blockedFindings(result), 1);
    const example = result.rules[0]!.examples[0]!;
    assert.deepEqual(example, { observedMs: t0, source: "payments/api-1", text: "executables: /usr/bin/nc is a blocked executable (pid 212)", command: "nc -l -p 4444" });
  });

  it("in audit mode reports the same findings as alerts, and nothing as blocked", () => {
    const result = replay(policy("audit", "{executables: {blocked: ['**/nc']}}"), [exec(nc)]);
    assert.deepEqual(result.rules[0]!.actions, { alert: 1 });
    assert.equal(blockedFindings(result), 0);
    assert.match(formatText({ result, skipped: { count: 0, first: [] } }), /would alert \(audit mode blocks nothing\):[\s\S]*result: nothing would be blocked \(1 alert\)/);
  });

  it("replays a record delivered twice once, and keeps each pod's processes apart", () => {
    const first = exec(nc);
    const otherPod = { ...exec(nc), resource: podB };
    const result = replay(policy("enforce", "{executables: {blocked: ['**/nc']}}"), [first, { ...first }, otherPod]);
    assert.equal(result.records.duplicates, 1);
    assert.deepEqual(result.records.sources, ["payments/api-1", "payments/api-2"]);
    assert.equal(result.rules[0]!.findings, 2);
    assert.equal(result.processesKilled, 2);
  });

  it("reports a finding once per process, like the sensor, and again for a reused PID after its exit", () => {
    const reused = { ...nc, startTicks: nc.startTicks + 5000 };
    const result = replay(policy("enforce", "{executables: {blocked: ['**/nc']}}"), [exec(nc), exec(nc, t0 + 1), exit(nc, t0 + 2), exec(reused, t0 + 5000)]);
    assert.equal(result.rules[0]!.findings, 2);
  });

  it("never kills PID 1, and blocks an unattributed connection with nothing left to kill", () => {
    const init = processInfo({ pid: 1, ppid: 0, startTicks: t0 - 1000, comm: "nc", exe: { path: "/usr/bin/nc", deleted: false, memfd: false }, origin: "container-init" });
    const result = replay(policy("enforce", "{executables: {blocked: ['**/nc']}, network: {blockedOutbound: [{cidr: 169.254.169.254/32}]}}"), [
      exec(init),
      outbound("169.254.169.254", 80),
      outbound("10.1.1.1", 443),
    ]);
    assert.deepEqual(
      result.rules.map((r) => [r.control, r.rule, r.actions]),
      [
        ["executables", "**/nc", { denied: 1 }],
        ["network", "cidr=169.254.169.254/32", { gone: 1 }],
      ],
    );
    assert.equal(result.processesKilled, 0);
    assert.equal(blockedFindings(result), 2);
  });

  it("detects a port scan from connection records in their recorded time", () => {
    const scanner = processInfo({ pid: 400, startTicks: t0 - 5 });
    const scan = (spacingMs: number) => Array.from({ length: 5 }, (_, i) => outbound("10.9.9.9", 1000 + i, scanner, t0 + i * spacingMs));
    const candidate = policy("enforce", "{portScan: {detect: true, distinctPorts: 5, windowSeconds: 10}}");
    assert.deepEqual(replay(candidate, [exec(scanner), ...scan(100)]).rules.map((r) => [r.control, r.findings]), [["portScan", 1]]);
    assert.deepEqual(replay(candidate, [exec(scanner), ...scan(3000)]).rules, []);
  });

  it("names the controls whose facts are not recorded, with the findings the records hold of them", () => {
    const recordedFinding: RecordedRecord = { ...exec(nc), eventName: "microenforcer.policy.violation", attributes: { "microenforcer.control": "reverseShell" } };
    const result = replay(policy("enforce", "{reverseShell: {}, executables: {blocked: []}}"), [exec(nc), recordedFinding]);
    assert.deepEqual(
      result.notReplayed.map((n) => [n.control, n.recordedFindings]),
      [["reverseShell", 1]],
    );
    assert.match(formatText({ result, skipped: { count: 0, first: [] } }), /not replayed:\n {2}reverseShell: whether a process's stdin, stdout or stderr was a socket/);
  });

  it("replays drift where the executable's change time was recorded, and says where it was not", () => {
    const init = processInfo({ pid: 1, ppid: 0, startTicks: t0 - 60_000, origin: "container-init" });
    const dropped = processInfo({ pid: 600, startTicks: t0, exe: { path: "/tmp/dropped", deleted: false, memfd: false }, exeFile: { device: "0:52", inode: 7, ctimeMs: t0 - 1000 } });
    const shipped = processInfo({ pid: 601, startTicks: t0, exe: { path: "/usr/bin/curl", deleted: false, memfd: false }, exeFile: { device: "0:52", inode: 8, ctimeMs: t0 - 90_000 } });
    const unknown = processInfo({ pid: 602, startTicks: t0 });
    const result = replay(policy("audit", "{drift: {}}"), [exec(init), exec(dropped), exec(shipped), exec(unknown)]);
    assert.deepEqual(result.notReplayed, []);
    assert.deepEqual(result.rules.map((r) => [r.control, r.findings, r.examples[0]?.text]), [["drift", 1, "drift: /tmp/dropped was created or changed 59.0 s after its container started (pid 600)"]]);
    // The init and pid 602, without a recorded change time.
    assert.match(result.notes.join("\n"), /drift was checked only where the executable's change time was recorded .*; 2 execs without it were not/);
  });

  it("says when a verdict depends on what was not recorded", () => {
    const session = processInfo({ pid: 500, ppid: 0, startTicks: t0, origin: "exec-session", comm: "ps", exe: { path: "/bin/busybox", deleted: false, memfd: false }, args: ["ps"] });
    const candidate = policy("enforce", "{containerExec: {allowedCommands: [ps]}, network: {blockedOutbound: [{domain: '*.pool.example'}]}}");
    // With argv recorded, busybox's `ps` applet is allowed by argv[0], as the sensor allows it.
    assert.deepEqual(replay(candidate, [exec(session)]).rules, []);
    const without = replay(candidate, [exec(session, t0, { fullCommandArguments: false }), outbound("10.1.1.1", 3333)]);
    assert.deepEqual(without.rules.map((r) => r.control), ["containerExec"]);
    assert.match(without.notes.join("\n"), /1 exec sessions were recorded without their arguments/);
    assert.match(without.notes.join("\n"), /1 blockedOutbound rules need DNS names, and no connection record carries one/);
  });

  it("prints a JSON summary for programs", () => {
    const result = replay(policy("enforce", "{executables: {blocked: ['**/nc']}}"), [exec(nc)]);
    const json = JSON.parse(formatJson({ result, skipped: { count: 1, first: [{ where: "f:3", why: "not JSON" }] } })) as Record<string, unknown>;
    assert.equal(json.blockedFindings, 1);
    assert.deepEqual(json.skipped, { count: 1, first: [{ where: "f:3", why: "not JSON" }] });
  });

  it("keeps control characters from recorded command lines off the terminal", () => {
    const evil = { ...nc, args: ["nc", "\u001b]0;owned\u0007"] };
    const text = formatText({ result: replay(policy("enforce", "{executables: {blocked: ['**/nc']}}"), [exec(evil)]), skipped: { count: 0, first: [] } });
    assert.ok(!text.includes("\u001b"), text);
  });
});
