/** The records' attributes against the OTel semantic conventions (registry: process, network, server, client, security_rule, log). */
import assert from "node:assert/strict";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import type { Finding } from "../../microenforcer/policy/process-controls.ts";
import type { SocketEntry } from "../../microenforcer/proc/socket-table.ts";
import { networkRecord } from "../../microenforcer/records/network-records.ts";
import { processRecord } from "../../microenforcer/records/process-records.ts";
import { ruleAttributes } from "../../microenforcer/records/security-rule.ts";
import { violationRecord } from "../../microenforcer/records/violation-records.ts";
import { defaultPolicy, parsePolicies } from "../../policies/load.ts";
import { processInfo } from "./process-fixture.ts";

const clock = { bootMs: 1_700_000_000_000, ticksPerSecond: 100 };
const forensics = defaultPolicy().spec.forensics;
const exec = (p = processInfo(), f = forensics) => processRecord({ kind: "exec", process: p, inPlace: false, observedAt: 5 }, clock, f)!.attributes;

describe("process attributes (OTel process semantic conventions)", () => {
  it("names the executable only from the executable, and argv[0] as process.command, even without the arguments", () => {
    const busybox = processInfo({ comm: "ls", exe: { path: "/bin/busybox", deleted: false, memfd: false }, args: ["ls", "-l", "/tmp"] });
    const a = exec(busybox, { ...forensics, fullCommandArguments: false });
    assert.equal(a["process.executable.name"], "busybox");
    assert.equal(a["process.command"], "ls");
    assert.equal(a["process.args_count"], 3);
    assert.equal(a["process.command_line"], undefined);
    const unreadable = processInfo({ comm: "nginx" });
    delete unreadable.exe;
    assert.equal(exec(unreadable)["process.executable.name"], undefined, "comm is the task's own name, not the executable's");
    assert.equal(exec(unreadable)["microenforcer.process.comm"], "nginx");
  });

  it("leaves process.parent_pid out for a process started from outside the namespace, rather than 0", () => {
    assert.equal(exec(processInfo({ ppid: 0, origin: "exec-session" }))["process.parent_pid"], undefined);
    assert.equal(exec(processInfo({ ppid: 7 }))["process.parent_pid"], 7);
  });

  it("says the session and group leaders, whether it is interactive, and its working directory", () => {
    const a = exec(processInfo({ session: 40, pgrp: 41, tty: true, cwd: "/srv" }));
    assert.deepEqual([a["process.session_leader.pid"], a["process.group_leader.pid"], a["process.interactive"], a["process.working_directory"]], [40, 41, true, "/srv"]);
    // A leader outside the namespace reads as 0: not a PID to name.
    const outside = exec(processInfo({ session: 0, pgrp: 0, tty: false }));
    assert.deepEqual([outside["process.session_leader.pid"], outside["process.group_leader.pid"], outside["process.interactive"]], [undefined, undefined, false]);
  });

  it("gives exec records a short ancestry, nearest first", () => {
    const ancestors = [
      { pid: 30, executable: "/bin/sh" },
      { pid: 1, executable: "/usr/sbin/nginx" },
    ];
    assert.deepEqual(exec(processInfo({ ancestors }))["microenforcer.process.ancestors"], ancestors);
  });

  it("gives the exit code of a zombie it could read, as a shell reports it", () => {
    const exit = (status: number | undefined, p = processInfo()) =>
      processRecord({ kind: "exit", process: p, observedAt: 5, ...(status !== undefined && { exitStatus: status }) }, clock, forensics)!.attributes;
    assert.deepEqual([exit(3 << 8)["process.exit.code"], exit(3 << 8)["microenforcer.process.exit_signal"]], [3, undefined]);
    assert.deepEqual([exit(9)["process.exit.code"], exit(9)["microenforcer.process.exit_signal"]], [137, 9]);
    assert.equal(exit(undefined)["process.exit.code"], undefined);
    // stat shows 0 to a reader without ptrace access: a process whose executable was unreadable gets no code.
    const unreadable = processInfo();
    delete unreadable.exe;
    assert.equal(exit(0, unreadable)["process.exit.code"], undefined);
  });
});

function socket(over: Partial<SocketEntry> = {}): SocketEntry {
  return { transport: "tcp", family: "ipv4", localAddress: "10.0.0.5", localPort: 8080, remoteAddress: "10.0.0.9", remotePort: 51000, state: "ESTABLISHED", uid: 0, inode: 1, row: "", ...over };
}
const connection = (o: Partial<NetworkObservation>, name?: { name: string; source: "forwarder" | "reverse" }) =>
  networkRecord({ observation: { kind: "connection", direction: "outbound", socket: socket(), attribution: "process", detection: "change", ...o }, observedAt: 5, ...(name && { name }) }, clock, forensics).attributes;

describe("network attributes (OTel network, server and client semantic conventions)", () => {
  for (const [kernel, value] of [
    ["SYN_RECV", "syn_received"],
    ["NEW_SYN_RECV", "syn_received"],
    ["FIN_WAIT1", "fin_wait_1"],
    ["FIN_WAIT2", "fin_wait_2"],
    ["CLOSE", "closed"],
    ["CLOSE_WAIT", "close_wait"],
    ["TIME_WAIT", "time_wait"],
  ]) {
    it(`writes the kernel's ${kernel} as network.connection.state ${value}`, () => {
      assert.equal(connection({ socket: socket({ state: kernel! }) })["network.connection.state"], value);
    });
  }

  it("names the server side of an outbound connection, and the client of an inbound one", () => {
    const outbound = connection({}, { name: "api.example.test", source: "forwarder" });
    assert.deepEqual([outbound["server.address"], outbound["server.port"], outbound["client.address"]], ["api.example.test", 51000, undefined]);
    const inbound = connection({ direction: "inbound" });
    assert.deepEqual([inbound["client.address"], inbound["client.port"], inbound["server.port"], inbound["server.address"]], ["10.0.0.9", 51000, 8080, undefined]);
  });

  it("keeps a PTR name out of server.address", () => {
    const a = connection({}, { name: "ec2-10-0-0-9.compute.example", source: "reverse" });
    assert.deepEqual([a["server.address"], a["microenforcer.dns.reverse_name"]], [undefined, "ec2-10-0-0-9.compute.example"]);
  });

  it("gives an unconnected UDP socket no connection state (its listen record says what it is)", () => {
    const udp = networkRecord(
      { observation: { kind: "listen", socket: socket({ transport: "udp", state: "CLOSE", remoteAddress: "0.0.0.0", remotePort: 0 }), attribution: "process", detection: "change" }, observedAt: 5 },
      clock,
      forensics,
    );
    assert.equal(udp.attributes["network.connection.state"], undefined);
  });
});

describe("security_rule attributes of findings", () => {
  const policy = parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: strict, generation: 4}\nspec:\n  enforcementMode: enforce\n", "p.yaml")[0]!;
  const finding: Finding = { control: "executables", rule: "**/xmrig", reason: "/tmp/xmrig is a blocked executable", block: true };

  it("names the rule, its control as category, the policy as ruleset, its generation as version", () => {
    const a = violationRecord({ finding, process: processInfo(), action: "killed", observedAt: 5 }, policy, clock).attributes;
    assert.deepEqual([a["security_rule.name"], a["security_rule.category"], a["security_rule.ruleset.name"], a["security_rule.version"]], ["**/xmrig", "executables", "strict", "4"]);
    assert.match(String(a["security_rule.uuid"]), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("gives a rule the same uuid on every pod and at every generation, and another rule another", () => {
    const again = { ...policy, metadata: { name: "strict", generation: 9 } };
    assert.equal(ruleAttributes(again, finding)["security_rule.uuid"], ruleAttributes(policy, finding)["security_rule.uuid"]);
    assert.notEqual(ruleAttributes(policy, { ...finding, rule: "**/nc" })["security_rule.uuid"], ruleAttributes(policy, finding)["security_rule.uuid"]);
  });
});
