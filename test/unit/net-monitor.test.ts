/**
 * From observations to records and policy decisions (NetworkMonitor, network-records), the
 * change detector's counters, and the inode → owner cache over a fake /proc.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { socketCounters, socketsAppeared } from "../../microenforcer/net/change-detector.ts";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import type { PeerName } from "../../microenforcer/net/dns-names.ts";
import { InodeOwners } from "../../microenforcer/net/inode-owners.ts";
import { NetworkMonitor } from "../../microenforcer/pipeline/network-monitor.ts";
import type { SocketEntry } from "../../microenforcer/proc/socket-table.ts";
import { PolicyEngine } from "../../microenforcer/policy/engine.ts";
import { networkSensorNeeded, PolicyHolder } from "../../microenforcer/policy/policy-holder.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { ProcessTable } from "../../microenforcer/tracker/process-table.ts";
import type { ProcessEvent } from "../../microenforcer/tracker/process-tracker.ts";
import { defaultPolicy, parsePolicies } from "../../policies/load.ts";
import type { RuntimePolicy } from "../../policies/schema.ts";
import { processInfo } from "./process-fixture.ts";

const clock = { bootMs: 1_700_000_000_000, ticksPerSecond: 100 };
const curl = processInfo({ pid: 212, startTicks: 500, args: ["curl", "-s", "https://api.example.test/"] });

const socket = (over: Partial<SocketEntry> = {}): SocketEntry => ({
  transport: "tcp",
  family: "ipv4",
  localAddress: "10.0.0.5",
  localPort: 43122,
  remoteAddress: "192.0.2.7",
  remotePort: 443,
  state: "ESTABLISHED",
  uid: 1000,
  inode: 9001,
  row: "0500000A:A872 070200C0:01BB 01",
  ...over,
});

const outbound = (over: Partial<NetworkObservation> = {}): NetworkObservation => ({
  kind: "connection",
  direction: "outbound",
  socket: socket(),
  owner: { pid: 212, startTicks: 500 },
  attribution: "process",
  detection: "change",
  ...over,
});

function setup(policy: RuntimePolicy = defaultPolicy(), lookup?: (address: string) => PeerName | "pending" | undefined) {
  let now = 1_000;
  const kills: number[] = [];
  const inForce = new PolicyHolder(policy);
  const processes = new ProcessTable();
  const engine = new PolicyEngine(inForce, {
    facts: { stdio: () => ({ targets: [], inet: new Map() }), denial: () => undefined },
    enforcer: {
      kill: (pid) => {
        kills.push(pid);
        return "killed";
      },
    },
    clock,
    now: () => now,
  });
  const monitor = new NetworkMonitor({
    engine,
    clock,
    selfPid: 7,
    policy: inForce,
    processes,
    names: () => (lookup === undefined ? undefined : { lookup }),
    now: () => now,
  });
  /** A process event, as the pipeline passes it on: the tracker's table first, then the monitor. */
  const seen = (event: ProcessEvent) => {
    if (event.kind === "exit") processes.exit(event.process, event.observedAt);
    else processes.add(event.process);
    return monitor.onProcess(event);
  };
  seen({ kind: "exec", process: curl, inPlace: false, observedAt: 900 });
  const sample = (...observations: NetworkObservation[]) => ({ observations, problems: [], malformed: 0 });
  return { monitor, seen, kills, sample, advance: (ms: number) => (now += ms) };
}

const names = (records: SensorRecord[]): string[] => records.map((r) => r.eventName.replace("microenforcer.", ""));

describe("NetworkMonitor and network records", () => {
  it("builds a connection record with the owner's identity, the peer's name and its source", () => {
    const { monitor, sample } = setup(defaultPolicy(), () => ({ name: "api.example.test", source: "forwarder" }));
    const [r] = monitor.handle(sample(outbound()), 1_000).records;
    assert.ok(r);
    assert.equal(r.eventName, "microenforcer.network.connection");
    assert.equal(r.body, "outbound tcp 10.0.0.5:43122 → api.example.test (192.0.2.7:443) by /usr/bin/curl (pid 212) in container app");
    assert.deepEqual(
      Object.fromEntries(Object.entries(r.attributes).filter(([k]) => k.startsWith("network.") || k.startsWith("server.") || k.includes("dns") || k.includes(".network."))),
      {
        "network.transport": "tcp",
        "network.type": "ipv4",
        "network.local.address": "10.0.0.5",
        "network.local.port": 43122,
        "network.peer.address": "192.0.2.7",
        "network.peer.port": 443,
        "network.connection.state": "established",
        "microenforcer.network.attribution": "process",
        "microenforcer.network.inode": 9001,
        "microenforcer.network.direction": "outbound",
        "server.address": "api.example.test",
        "server.port": 443,
        "microenforcer.dns.source": "forwarder",
      },
    );
    assert.equal(r.attributes["process.pid"], 212);
    assert.equal(r.attributes["k8s.container.name"], "app");
    assert.equal(r.attributes["process.command_line"], "curl -s https://api.example.test/");
  });

  it("leaves out the command line when the policy does not audit it, and records listeners and unattributed sockets", () => {
    const policy = parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  forensics: {fullCommandArguments: false}\n", "p.yaml")[0]!;
    const { monitor, sample } = setup(policy);
    const listen: NetworkObservation = { kind: "listen", socket: socket({ localAddress: "::", localPort: 8080, remoteAddress: "::", remotePort: 0, state: "LISTEN", family: "ipv6" }), owner: { pid: 212, startTicks: 500 }, attribution: "process", detection: "startup" };
    const closed = outbound({ socket: socket({ inode: 0, state: "TIME_WAIT" }), attribution: "closed" });
    delete closed.owner;
    const [l, c] = monitor.handle(sample(listen, closed), 1_000).records;
    assert.equal(l!.eventName, "microenforcer.network.listen");
    assert.equal(l!.body, "listen tcp [::]:8080 by /usr/bin/curl (pid 212) in container app");
    assert.equal(l!.attributes["network.type"], "ipv6");
    assert.equal(l!.attributes["process.command_line"], undefined);
    assert.equal(l!.attributes["microenforcer.sensor.detection"], "startup");
    assert.match(c!.body, /closed by its owner before the sensor looked: unattributed/);
    assert.equal(c!.attributes["process.pid"], undefined);
    assert.equal(c!.attributes["network.connection.state"], "time_wait");
    assert.equal(c!.attributes["microenforcer.network.inode"], undefined);
  });

  it("never reports the sidecar's own sockets", () => {
    const { monitor, sample } = setup();
    assert.deepEqual(monitor.handle(sample(outbound({ owner: { pid: 7, startTicks: 1 } })), 1_000).records, []);
  });

  it("holds a connection until its owner's exec record, and gives up after a while with the PID alone", () => {
    const { monitor, seen, sample, advance } = setup();
    const early = outbound({ owner: { pid: 300, startTicks: 600 } });
    assert.deepEqual(monitor.handle(sample(early), 1_000).records, []);
    const child = { ...curl, pid: 300, startTicks: 600 };
    assert.deepEqual(names(seen({ kind: "exec", process: child, inPlace: false, observedAt: 1_001 }).records), ["network.connection"]);
    const orphan = outbound({ owner: { pid: 301, startTicks: 601 } });
    monitor.handle(sample(orphan), 1_000);
    assert.deepEqual(monitor.flush().records, []);
    advance(2_500);
    const [r] = monitor.flush().records;
    assert.equal(r?.attributes["process.pid"], 301);
    assert.equal(r?.attributes["process.executable.name"], undefined);
    assert.match(r!.body, /by pid 301$/);
  });

  it("keeps an exited owner long enough for its last connections", () => {
    const { monitor, seen, sample } = setup();
    seen({ kind: "exit", process: curl, observedAt: 1_000 });
    assert.equal(monitor.handle(sample(outbound()), 1_000).records[0]?.attributes["process.executable.path"], "/usr/bin/curl");
  });

  it("waits for a reverse lookup, but runs the controls at once, and again with the name", () => {
    const policy = parsePolicies(
      "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  enforcementMode: enforce\n  controls:\n    network: {blockedOutbound: [{domain: '*.pool.example'}, {cidr: 192.0.2.0/24}]}\n",
      "p.yaml",
    )[0]!;
    let answer: PeerName | "pending" = "pending";
    const { monitor, sample, kills } = setup(policy, () => answer);
    const first = monitor.handle(sample(outbound()), 1_000).records;
    assert.deepEqual(names(first), ["policy.violation"], "the CIDR rule at once; the record waits for the name");
    assert.equal(first[0]!.attributes["microenforcer.rule"], "cidr=192.0.2.0/24");
    assert.deepEqual(kills, [212]);
    answer = { name: "xmr.pool.example", source: "reverse" };
    const later = monitor.flush().records;
    assert.deepEqual(names(later), ["network.connection", "policy.violation"]);
    // A PTR name is the address owner's claim, not what the process resolved: not server.address.
    assert.equal(later[0]!.attributes["server.address"], undefined);
    assert.equal(later[0]!.attributes["microenforcer.dns.reverse_name"], "xmr.pool.example");
    assert.equal(later[0]!.attributes["microenforcer.dns.source"], "reverse");
    assert.equal(later[1]!.attributes["microenforcer.rule"], "domain=*.pool.example");
  });

  it("gives up on a name that does not come", () => {
    const { monitor, sample, advance } = setup(defaultPolicy(), () => "pending");
    assert.deepEqual(monitor.handle(sample(outbound()), 1_000).records, []);
    advance(2_000);
    const [r] = monitor.flush().records;
    assert.equal(r?.attributes["server.address"], undefined);
    assert.equal(r?.attributes["network.peer.address"], "192.0.2.7");
  });

  it("records violations even when network records are off, and turns the sensor on only when needed", () => {
    const policy = parsePolicies(
      "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  forensics: {networkActivity: false}\n  controls:\n    network: {blockedListenPorts: [23]}\n",
      "p.yaml",
    )[0]!;
    const { monitor, sample } = setup(policy);
    const telnet: NetworkObservation = { kind: "listen", socket: socket({ localPort: 23, remoteAddress: "0.0.0.0", remotePort: 0, state: "LISTEN" }), owner: { pid: 212, startTicks: 500 }, attribution: "process", detection: "change" };
    assert.deepEqual(names(monitor.handle(sample(telnet), 1_000).records), ["policy.violation"]);
    assert.equal(networkSensorNeeded(policy), true);
    const off = parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  forensics: {networkActivity: false}\n", "p.yaml")[0]!;
    assert.equal(networkSensorNeeded(off), false);
    assert.equal(networkSensorNeeded(defaultPolicy()), true);
  });

  it("reports unreadable descriptors as a read problem with the owner's uid", () => {
    const { monitor } = setup();
    const { problems } = monitor.handle({ observations: [], problems: [{ pid: 212, code: "EACCES" }], malformed: 0 }, 1_000);
    assert.deepEqual(problems, [{ problem: { file: "fd", code: "EACCES", uid: 1000 }, pid: 212 }]);
  });
});

describe("change detector counters", () => {
  const fixture = (name: string): string => readFileSync(new URL(`../fixtures/net/${name}`, import.meta.url), "latin1");

  it("reads socket counts and the TCP open counters from recorded files", () => {
    assert.deepEqual(socketCounters(fixture("sockstat.txt"), fixture("sockstat6.txt"), fixture("snmp.txt")), { used: 13, tcp: 6, udp: 2, tcp6: 4, udp6: 1, opens: 10 });
    assert.deepEqual(socketCounters("", "", ""), { used: 0, tcp: 0, udp: 0, tcp6: 0, udp6: 0, opens: 0 });
  });

  it("sees an appearance in a new open or a count going up, not in closes alone", () => {
    const base = { used: 13, tcp: 6, udp: 2, tcp6: 4, udp6: 1, opens: 10 };
    assert.equal(socketsAppeared(undefined, base), true);
    assert.equal(socketsAppeared(base, { ...base }), false);
    assert.equal(socketsAppeared(base, { ...base, used: 12, tcp: 5 }), false, "a close");
    assert.equal(socketsAppeared(base, { ...base, opens: 11 }), true, "closed and opened within one poll: the open counter still moved");
    assert.equal(socketsAppeared(base, { ...base, udp6: 2 }), true);
  });
});

describe("InodeOwners over a fake /proc", () => {
  let root: string;
  const fd = (pid: number, n: number, target: string): void => symlinkSync(target, join(root, String(pid), "fd", String(n)));

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "microenforcer-fakeproc-"));
    for (const pid of [10, 20]) mkdirSync(join(root, String(pid), "fd"), { recursive: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it("finds owners, keeps the first holder of a shared socket, and finds a socket on a reused descriptor", () => {
    fd(10, 0, "/dev/null");
    fd(10, 3, "socket:[100]");
    fd(20, 3, "socket:[200]");
    fd(20, 4, "socket:[100]"); // inherited across a fork
    const owners = new InodeOwners(root);
    const live = [
      { pid: 10, startTicks: 1 },
      { pid: 20, startTicks: 2 },
    ];
    const inTables = new Set([100, 200]);
    assert.deepEqual([...owners.resolve(new Set([100, 200]), live, (i) => inTables.has(i))], []);
    assert.equal(owners.owner(100)?.pid, 10);
    assert.equal(owners.owner(200)?.pid, 20);
    // Process 10 closes fd 3 and opens a new socket on it.
    unlinkSync(join(root, "10", "fd", "3"));
    fd(10, 3, "socket:[300]");
    inTables.delete(100);
    inTables.add(300);
    owners.forget([100]);
    assert.deepEqual([...owners.resolve(new Set([300]), live, (i) => inTables.has(i))], []);
    assert.equal(owners.owner(300)?.pid, 10);
    // A file closed and its number reused by a socket: found by the thorough pass.
    unlinkSync(join(root, "10", "fd", "0"));
    fd(10, 0, "socket:[400]");
    inTables.add(400);
    assert.deepEqual([...owners.resolve(new Set([400]), live, (i) => inTables.has(i))], []);
    assert.equal(owners.owner(400)?.pid, 10);
  });

  it("says which inodes nobody holds, forgets processes that exited, and reports unreadable ones", () => {
    fd(10, 3, "socket:[100]");
    const owners = new InodeOwners(root);
    assert.deepEqual([...owners.resolve(new Set([100, 999]), [{ pid: 10, startTicks: 1 }], () => true)], [999]);
    assert.equal(owners.owner(100)?.pid, 10);
    owners.resolve(new Set([555]), [{ pid: 10, startTicks: 5 }], () => true); // PID 10 is a new process now
    assert.deepEqual(owners.owner(100), { pid: 10, startTicks: 5 }, "found again, on the new process");
    assert.deepEqual(owners.takeProblems(), []);
  });
});
