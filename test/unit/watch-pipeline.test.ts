/**
 * WatchPipeline: capture events in, records out, in order, as the sidecar emits them; the
 * policy's controls and enforcement between. /proc facts and kill(2) are stand-ins here
 * (test/integration/ runs the whole program against the real kernel).
 */
import assert from "node:assert/strict";
import type { CaptureEvent } from "../../microenforcer/capture/events.ts";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import { WatchPipeline } from "../../microenforcer/pipeline/watch-pipeline.ts";
import { PolicyHolder } from "../../microenforcer/policy/policy-holder.ts";
import type { StdioSockets } from "../../microenforcer/proc/process-facts.ts";
import type { ProcSnapshot, ReadProblem } from "../../microenforcer/proc/reader.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { defaultPolicy, parsePolicies } from "../../policies/load.ts";

const selfPid = 50;
const policy = (spec: string) => parsePolicies(`apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n${spec}\n`, "p.yaml")[0]!;

function snapshot(pid: number, ppid: number, startTicks: number, exe: string, args: string[], over: Partial<ProcSnapshot> = {}): ProcSnapshot {
  return { pid, ppid, startTicks, comm: exe.split("/").pop()!, state: "S", uid: 1000, euid: 1000, exe: { path: exe, deleted: false, memfd: false }, args, problems: [], fingerprint: "", ...over };
}
const spawn = (s: ProcSnapshot, at = 1_000): CaptureEvent => ({ type: "spawn", snapshot: s, detection: "trigger", observedAt: at, image: "exec" });

function setup(inForce = new PolicyHolder(defaultPolicy())) {
  let now = 1_000;
  let stdio: StdioSockets = { inet: new Map() };
  const kills: Array<[number, number]> = [];
  const pipeline = new WatchPipeline(inForce, {
    clock: { bootMs: 1_700_000_000_000, ticksPerSecond: 100 },
    selfPid,
    facts: { stdio: () => stdio, exeChangedMs: () => 0, denial: () => undefined },
    enforcer: {
      kill: (pid, startTicks) => {
        kills.push([pid, startTicks]);
        return "killed";
      },
    },
    now: () => now,
  });
  return {
    pipeline,
    inForce,
    kills,
    setStdio: (next: StdioSockets) => (stdio = next),
    advance: (ms: number) => (now += ms),
    /** The records of these events, in order. */
    feed: (...events: CaptureEvent[]): SensorRecord[] => events.flatMap((e) => pipeline.handle(e)),
  };
}

const kinds = (records: SensorRecord[]): string[] => records.map((r) => `${r.eventName.replace("microenforcer.", "")} ${r.attributes["microenforcer.action"] ?? r.attributes["process.pid"] ?? ""}`.trim());

describe("WatchPipeline", () => {
  it("says how the sensor finds processes, its errors, and its gaps", () => {
    const { feed } = setup();
    const records = feed(
      { type: "trigger", mode: "scan", reason: "no ns_last_pid" },
      { type: "error", message: "EMFILE" },
      { type: "gap", kind: "pid", count: 3, firstPid: 20, lastPid: 22, since: 0, until: 10_000 },
    );
    assert.deepEqual(
      records.map((r) => [r.eventName, r.severity]),
      [
        ["microenforcer.sensor.status", "WARN"],
        ["microenforcer.sensor.status", "ERROR"],
        ["microenforcer.sensor.gap", "WARN"],
      ],
    );
    assert.equal(records[0]!.attributes["microenforcer.sensor.trigger"], "scan");
    assert.equal(records[2]!.attributes["microenforcer.gap.count"], 3);
  });

  it("records a process's exec and exit with its container and origin, and never the sensor's own", () => {
    const { feed } = setup();
    const records = feed(
      spawn(snapshot(10, 0, 100, "/bin/sh", ["sh"], { container: "app" })),
      spawn(snapshot(selfPid, 0, 90, "/usr/bin/node", ["node"])),
      spawn(snapshot(11, 10, 101, "/usr/bin/curl", ["curl", "-s", "https://example.test"])),
      { type: "exit", pid: 11, startTicks: 101, observedAt: 2_000 },
      { type: "exit", pid: selfPid, startTicks: 90, observedAt: 2_000 },
    );
    assert.deepEqual(kinds(records), ["process.exec 10", "process.exec 11", "process.exit 11"]);
    assert.equal(records[1]!.attributes["k8s.container.name"], "app");
    assert.equal(records[1]!.attributes["process.command_line"], "curl -s https://example.test");
    assert.equal(records[0]!.attributes["microenforcer.exec.origin"], "container-init");
  });

  it("says once per cause what it may not read, before the record it concerns", () => {
    const { feed } = setup();
    const denied: ReadProblem = { file: "exe", code: "EACCES", uid: 0 };
    const records = feed(spawn(snapshot(10, 0, 100, "/bin/sh", ["sh"], { problems: [denied] })), spawn(snapshot(11, 10, 101, "/bin/ls", ["ls"], { problems: [denied] })));
    assert.deepEqual(kinds(records), ["sensor.status 10", "process.exec 10", "process.exec 11"]);
    assert.equal(records[0]!.attributes["microenforcer.status.cause"], "exe:EACCES:0");
  });

  it("kills a blocked executable in enforce mode and records the violation after its exec; a reloaded policy applies from the next event", () => {
    const { feed, kills, inForce } = setup(new PolicyHolder(policy("  enforcementMode: enforce\n  controls: {executables: {blocked: ['**/nc']}}")));
    assert.deepEqual(kinds(feed(spawn(snapshot(10, 0, 100, "/usr/bin/nc", ["nc", "-l"])))), ["process.exec 10", "policy.violation killed"]);
    assert.deepEqual(kills, [[10, 100]]);
    inForce.set(policy("  enforcementMode: audit\n  forensics: {processActivity: false}\n  controls: {executables: {blocked: ['**/nc']}}"));
    assert.deepEqual(kinds(feed(spawn(snapshot(11, 0, 200, "/usr/bin/nc", ["nc", "-l"])))), ["policy.violation alert"], "no exec record, and no kill");
    assert.deepEqual(kills, [[10, 100]]);
  });

  it("names a connection's owner, leaves out the sensor's own, and at the end gives up waiting for an unseen owner", () => {
    const { feed, pipeline } = setup();
    feed(spawn(snapshot(10, 0, 100, "/usr/bin/curl", ["curl"], { container: "app" })));
    const socket = { transport: "tcp" as const, family: "ipv4" as const, localAddress: "10.0.0.5", localPort: 40000, remoteAddress: "192.0.2.7", remotePort: 443, state: "ESTABLISHED", uid: 1000, inode: 7, row: "" };
    const connection = (pid: number, startTicks: number, inode: number): NetworkObservation => ({ kind: "connection", direction: "outbound", socket: { ...socket, inode }, owner: { pid, startTicks }, attribution: "process", detection: "change" });
    const records = feed({ type: "network", sample: { observations: [connection(10, 100, 7), connection(selfPid, 90, 8), connection(77, 700, 9)], problems: [], malformed: 0 }, observedAt: 1_000 });
    assert.deepEqual(kinds(records), ["network.connection 10"]);
    assert.equal(records[0]!.attributes["k8s.container.name"], "app");
    const last = pipeline.recheck(true);
    assert.deepEqual(kinds(last), ["network.connection 77"]);
    assert.match(last[0]!.body, /by pid 77$/);
  });

  it("looks again at interpreters and catches one whose stdio became a socket after its exec", () => {
    const { feed, pipeline, setStdio } = setup(new PolicyHolder(policy("  controls: {reverseShell: {}}")));
    feed(spawn(snapshot(10, 0, 100, "/bin/bash", ["bash"])));
    assert.deepEqual(pipeline.recheck(), []);
    setStdio({ inet: new Map([[0, "tcp/10.0.0.9:4444"]]) });
    const records = pipeline.recheck();
    assert.deepEqual(kinds(records), ["policy.violation alert"]);
    assert.equal(records[0]!.attributes["microenforcer.control"], "reverseShell");
  });
});
