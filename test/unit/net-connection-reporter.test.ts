/** What the network sensor reports from table diffs: pure decisions, no kernel. */
import assert from "node:assert/strict";
import { classify, ConnectionReporter, defaultReporterOptions, isListener, networkType, type NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import type { Owner } from "../../microenforcer/net/inode-owners.ts";
import type { SocketEntry, Transport } from "../../microenforcer/proc/socket-table.ts";

const codes: Record<string, string> = { ESTABLISHED: "01", SYN_SENT: "02", SYN_RECV: "03", TIME_WAIT: "06", CLOSE: "07", CLOSE_WAIT: "08", LISTEN: "0A" };

/** A row as the parser would give it; `row` stands in for the kernel's hex text. */
function sock(transport: Transport, local: string, remote: string, state: string, inode: number): SocketEntry {
  const split = (e: string): [string, number] => [e.slice(0, e.lastIndexOf(":")), Number(e.slice(e.lastIndexOf(":") + 1))];
  const [localAddress, localPort] = split(local);
  const [remoteAddress, remotePort] = split(remote);
  return {
    transport,
    family: localAddress.includes(":") ? "ipv6" : "ipv4",
    localAddress,
    localPort,
    remoteAddress,
    remotePort,
    state,
    uid: 0,
    inode,
    row: `${local} ${remote} ${codes[state]}`,
  };
}

const alice: Owner = { pid: 10, startTicks: 100 };
const bob: Owner = { pid: 20, startTicks: 200 };

class Harness {
  readonly reporter = new ConnectionReporter();
  readonly owners = new Map<number, Owner>();
  now = 1000;
  step(added: SocketEntry[], removed: SocketEntry[] = [], advanceMs = 5): NetworkObservation[] {
    this.now += advanceMs;
    return this.reporter.update({ added, removed, owner: (inode) => this.owners.get(inode), detection: "change", now: this.now });
  }
}

const brief = (o: NetworkObservation): string =>
  `${o.kind}${o.direction ? `/${o.direction}` : ""} ${o.socket.transport} ${o.socket.localPort}->${o.socket.remotePort} ${o.attribution}${o.owner ? ` pid ${o.owner.pid}` : ""}`;

describe("ConnectionReporter", () => {
  it("reports a listener, both ends of a loopback connection with their directions, once each", () => {
    const h = new Harness();
    h.owners.set(1, bob).set(2, alice).set(3, bob);
    const listener = sock("tcp", "0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 1);
    const client = sock("tcp", "127.0.0.1:40000", "127.0.0.1:8080", "ESTABLISHED", 2);
    const server = sock("tcp", "127.0.0.1:8080", "127.0.0.1:40000", "ESTABLISHED", 3);
    assert.deepEqual(h.step([listener, client, server]).map(brief), [
      "listen tcp 8080->0 process pid 20",
      "connection/outbound tcp 40000->8080 process pid 10",
      "connection/inbound tcp 8080->40000 process pid 20",
    ]);
    // The client closes: its row turns into CLOSE_WAIT... and TIME_WAIT rows with inode 0 follow.
    const clientClosing = sock("tcp", "127.0.0.1:40000", "127.0.0.1:8080", "CLOSE_WAIT", 2);
    assert.deepEqual(h.step([clientClosing], [client]), []);
    const timeWait = sock("tcp", "127.0.0.1:40000", "127.0.0.1:8080", "TIME_WAIT", 0);
    assert.deepEqual(h.step([timeWait], [clientClosing, server]), []);
  });

  it("reports a connection seen only after its owner closed it, unattributed, once", () => {
    const h = new Harness();
    const timeWait = sock("tcp", "10.0.0.5:40001", "93.184.216.34:443", "TIME_WAIT", 0);
    assert.deepEqual(h.step([timeWait]).map(brief), ["connection/outbound tcp 40001->443 closed"]);
    assert.deepEqual(h.step([]), []);
    // Gone, then the same 5-tuple again much later: a new connection.
    h.step([], [timeWait]);
    assert.equal(h.step([sock("tcp", "10.0.0.5:40001", "93.184.216.34:443", "TIME_WAIT", 0)]).length, 1);
  });

  it("waits for an inbound connection's accept, and for its owner, then attributes it", () => {
    const h = new Harness();
    h.owners.set(1, bob);
    h.step([sock("tcp", "0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 1)]);
    const queued = sock("tcp", "127.0.0.1:8080", "127.0.0.1:40002", "ESTABLISHED", 0);
    assert.deepEqual(h.step([queued]), [], "still in the accept queue");
    const accepted = sock("tcp", "127.0.0.1:8080", "127.0.0.1:40002", "ESTABLISHED", 7);
    assert.deepEqual(h.step([accepted], [queued]), [], "accepted, owner not found yet");
    h.owners.set(7, bob);
    assert.deepEqual(h.step([]).map(brief), ["connection/inbound tcp 8080->40002 process pid 20"]);
  });

  it("gives up on a missing owner after the grace period, and reports a socket that vanished while waiting", () => {
    const h = new Harness();
    const orphan = sock("tcp", "127.0.0.1:40003", "127.0.0.1:9", "ESTABLISHED", 8);
    assert.deepEqual(h.step([orphan]), []);
    assert.deepEqual(h.step([], [], defaultReporterOptions.ownerGraceMs).map(brief), ["connection/outbound tcp 40003->9 unknown"]);
    const brief2 = sock("tcp", "127.0.0.1:40004", "127.0.0.1:9", "ESTABLISHED", 9);
    h.step([brief2]);
    assert.deepEqual(h.step([], [brief2]).map(brief), ["connection/outbound tcp 40004->9 unknown"]);
  });

  it("leaves nothing waiting after the final read", () => {
    const h = new Harness();
    h.owners.set(1, bob);
    h.step([sock("tcp", "0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 1)]);
    const queued = sock("tcp", "127.0.0.1:8080", "127.0.0.1:40020", "ESTABLISHED", 0);
    const ownerless = sock("tcp", "127.0.0.1:40021", "127.0.0.1:9", "ESTABLISHED", 5);
    assert.deepEqual(h.step([queued, ownerless]), []);
    const out = h.reporter.update({ added: [], removed: [], owner: () => undefined, detection: "change", now: h.now + 1, final: true });
    assert.deepEqual(out.map(brief), ["connection/inbound tcp 8080->40020 unknown", "connection/outbound tcp 40021->9 unknown"]);
    assert.equal(h.reporter.hasPending, false);
  });

  it("reports UDP once per process and peer flow, again after the flow went idle", () => {
    const h = new Harness();
    h.owners.set(1, alice).set(2, alice).set(3, bob).set(4, alice);
    const q1 = sock("udp", "127.0.0.1:50001", "10.96.0.10:53", "ESTABLISHED", 1);
    const q2 = sock("udp", "127.0.0.1:50002", "10.96.0.10:53", "ESTABLISHED", 2);
    const other = sock("udp", "127.0.0.1:50003", "10.96.0.10:53", "ESTABLISHED", 3);
    assert.deepEqual(h.step([q1, q2, other]).map(brief), ["connection/outbound udp 50001->53 process pid 10", "connection/outbound udp 50003->53 process pid 20"]);
    h.step([], [q1, q2, other]);
    const q4 = sock("udp", "127.0.0.1:50004", "10.96.0.10:53", "ESTABLISHED", 4);
    assert.deepEqual(h.step([q4]), [], "same flow, within flowIdleMs");
    h.step([], [q4]);
    h.owners.set(5, alice);
    const later = sock("udp", "127.0.0.1:50005", "10.96.0.10:53", "ESTABLISHED", 5);
    assert.equal(h.step([later], [], defaultReporterOptions.flowIdleMs + 1).length, 1);
  });

  it("treats a bound UDP socket without a peer as a listener", () => {
    const h = new Harness();
    h.owners.set(1, bob);
    const server = sock("udp", "0.0.0.0:5353", "0.0.0.0:0", "CLOSE", 1);
    assert.deepEqual(h.step([server]).map(brief), ["listen udp 5353->0 process pid 20"]);
  });

  it("remembers a closed listener to classify the connections it accepted", () => {
    const h = new Harness();
    h.owners.set(1, bob).set(2, bob);
    const listener = sock("tcp", "127.0.0.1:8080", "0.0.0.0:0", "LISTEN", 1);
    h.step([listener]);
    h.step([], [listener]);
    assert.deepEqual(h.step([sock("tcp", "127.0.0.1:8080", "127.0.0.1:40010", "ESTABLISHED", 2)]).map(brief), ["connection/inbound tcp 8080->40010 process pid 20"]);
  });

  it("ignores half-open request sockets", () => {
    const h = new Harness();
    assert.deepEqual(h.step([sock("tcp", "127.0.0.1:8080", "127.0.0.1:40011", "SYN_RECV", 0)]), []);
  });

  it("classifies against listeners on the same address or a wildcard, and names the network type", () => {
    const s = sock("tcp", "10.0.0.5:8080", "10.0.0.9:1234", "ESTABLISHED", 1);
    assert.equal(classify(s, () => ["127.0.0.1"]), "outbound");
    assert.equal(classify(s, () => ["10.0.0.5"]), "inbound");
    assert.equal(classify(s, () => ["::"]), "inbound");
    assert.equal(isListener(sock("udp", "127.0.0.1:53", "127.0.0.1:40000", "ESTABLISHED", 1)), false);
    assert.equal(networkType("127.0.0.1"), "ipv4");
    assert.equal(networkType("fd00::1"), "ipv6");
  });
  it("counts TCP connections still waiting for their owner or accept as pending, not listeners or UDP", () => {
    const h = new Harness();
    h.owners.set(1, bob);
    const listener = sock("tcp", "0.0.0.0:8080", "0.0.0.0:0", "LISTEN", 9);
    const unowned = sock("tcp", "127.0.0.1:40000", "10.0.0.1:443", "ESTABLISHED", 2);
    const queued = sock("tcp", "127.0.0.1:8080", "127.0.0.1:40002", "ESTABLISHED", 0);
    const udp = sock("udp", "127.0.0.1:5000", "10.0.0.1:53", "ESTABLISHED", 3);
    assert.deepEqual(h.step([listener, unowned, queued, udp]), []);
    assert.equal(h.reporter.pendingTcpConnections, 2);
    // The owner turns up: one left, waiting for its accept.
    h.owners.set(2, alice);
    assert.deepEqual(h.step([]).map(brief), ["connection/outbound tcp 40000->443 process pid 10"]);
    assert.equal(h.reporter.pendingTcpConnections, 1);
  });
});
