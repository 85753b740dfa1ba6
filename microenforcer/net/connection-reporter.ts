/**
 * Socket-table rows → what to report, once: pure state over the rows each read added and
 * removed. Decides listen/outbound/inbound, whose socket it is, and when a row is news:
 * - a TCP connection once per (transport, 5-tuple, inode): a state change is not news, and
 *   the TIME_WAIT row (inode 0) its close leaves behind is not either;
 * - a row seen only with inode 0 after its owner closed it (TIME_WAIT, FIN_WAIT…) is
 *   reported unattributed: the connection happened, whose it was is lost;
 * - an inbound connection not yet accept()ed also has inode 0: it waits for the accept;
 * - UDP once per (process, peer) flow, until the flow has been idle for flowIdleMs;
 * - a LISTEN socket, or a bound UDP socket without a peer (as `ss -l` counts them), is a listener.
 */
import { isIPv4 } from "node:net";
import type { Owner } from "./inode-owners.ts";
import type { SocketEntry } from "../proc/socket-table.ts";

export type Direction = "outbound" | "inbound";
/** `process`: the owner was found; `closed`: seen only after its owner closed it; `unknown`: no process we can read holds it. */
export type Attribution = "process" | "closed" | "unknown";
/** What made the sensor read the tables: `startup` (already there), `change` (a counter moved) or `backstop` (the periodic read). */
export type NetworkDetection = "startup" | "change" | "backstop";

export interface NetworkObservation {
  kind: "connection" | "listen";
  /** Connections only. */
  direction?: Direction;
  socket: SocketEntry;
  owner?: Owner;
  attribution: Attribution;
  detection: NetworkDetection;
}

export interface ReporterOptions {
  /** How long a socket whose owner is not found yet (a process not seen yet) waits before it is reported unattributed. */
  ownerGraceMs: number;
  /** How long an inbound connection waits for its accept(). */
  acceptGraceMs: number;
  /** A UDP flow is reported again after this long without a socket of it. */
  flowIdleMs: number;
  /** A listener is remembered this long after it closed, to classify the connections it accepted. */
  listenerMemoryMs: number;
}

export const defaultReporterOptions: ReporterOptions = { ownerGraceMs: 250, acceptGraceMs: 1000, flowIdleMs: 120_000, listenerMemoryMs: 60_000 };

export interface TableDiff {
  added: SocketEntry[];
  removed: SocketEntry[];
  owner: (inode: number) => Owner | undefined;
  detection: NetworkDetection;
  now: number;
  /** The last read: nothing waits any longer. */
  final?: boolean;
}

/** The TCP states of a child socket still in its listener's accept queue (no inode yet). */
const acceptQueueStates = new Set(["ESTABLISHED", "CLOSE_WAIT"]);
/** Half-open request sockets: not a connection yet, and their child gets a row of its own. */
const requestStates = new Set(["SYN_RECV", "NEW_SYN_RECV"]);

const wildcard = new Set(["0.0.0.0", "::"]);

export function isListener(s: SocketEntry): boolean {
  if (s.transport === "tcp") return s.state === "LISTEN";
  return s.remotePort === 0 && wildcard.has(s.remoteAddress);
}

/** Inbound when the local port is one a listener of the same transport is bound to (on this address or a wildcard). */
export function classify(s: SocketEntry, listeningOn: (transport: string, port: number) => Iterable<string>): Direction {
  for (const address of listeningOn(s.transport, s.localPort)) if (wildcard.has(address) || address === s.localAddress) return "inbound";
  return "outbound";
}

/** `ipv4` or `ipv6` by the address shown: an IPv4-mapped peer of an IPv6 socket is IPv4 on the wire. */
export function networkType(address: string): "ipv4" | "ipv6" {
  return isIPv4(address) ? "ipv4" : "ipv6";
}

/** One connection: transport, both endpoints, inode. */
export const connectionKey = (s: SocketEntry): string => `${s.transport} ${s.row.slice(0, -3)} ${s.inode}`;
/** The 5-tuple alone. */
export const tupleKey = (s: SocketEntry): string => `${s.transport} ${s.row.slice(0, -3)}`;
/** One UDP flow: the owning process (or none) and the peer. */
export const flowKey = (s: SocketEntry, owner: Owner | undefined): string =>
  `${owner === undefined ? "?" : `${owner.pid}:${owner.startTicks}`} ${s.transport} ${s.remoteAddress} ${s.remotePort}`;

interface Pending {
  since: number;
  detection: NetworkDetection;
  /** Waiting for accept() (inode 0) rather than for its owner to be found. */
  accept: boolean;
}

/** Present-row counts per key: a key is forgotten once no row carries it. */
class Presence {
  private readonly counts = new Map<string, number>();
  add(key: string): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  count(key: string): number {
    return this.counts.get(key) ?? 0;
  }
  /** True when this was the last row with the key. */
  remove(key: string): boolean {
    const n = (this.counts.get(key) ?? 0) - 1;
    if (n > 0) this.counts.set(key, n);
    else this.counts.delete(key);
    return n <= 0;
  }
}

export class ConnectionReporter {
  private readonly options: ReporterOptions;
  private readonly reported = new Set<string>();
  private readonly reportedTuples = new Set<string>();
  private readonly present = new Presence();
  private readonly presentTuples = new Presence();
  private readonly pending = new Map<SocketEntry, Pending>();
  /** transport:port → addresses listening now (with multiplicity). */
  private readonly listeners = new Map<string, string[]>();
  /** transport:port:address of closed listeners → until when they still count. */
  private readonly pastListeners = new Map<string, number>();
  /** UDP flows → when one of their sockets was last present (Infinity while one is). */
  private readonly flows = new Map<string, { live: number; idleSince: number }>();
  /** Rows that opened a flow, so that their removal closes it. */
  private readonly flowOf = new Map<SocketEntry, string>();

  constructor(options: ReporterOptions = defaultReporterOptions) {
    this.options = options;
  }

  /** Inodes whose owner the caller should look for: rows still waiting for one. */
  get waitingInodes(): number[] {
    return [...this.pending].filter(([s, p]) => !p.accept && s.inode !== 0).map(([s]) => s.inode);
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  /** TCP connections opened since startup that wait for their owner or accept: not reported yet, not missed either. */
  get pendingTcpConnections(): number {
    let n = 0;
    for (const [s, p] of this.pending) if (s.transport === "tcp" && p.detection !== "startup" && !isListener(s)) n++;
    return n;
  }

  update(diff: TableDiff): NetworkObservation[] {
    const out: NetworkObservation[] = [];
    const { now } = diff;
    this.expire(now);
    const waiting = [...this.pending];
    // Listeners first, so connections added in the same read are classified against them.
    for (const s of diff.added) if (isListener(s)) this.addListener(s);
    const since = (p: Pending): Pending => (diff.final ? { ...p, since: -Infinity } : p);
    for (const [s, p] of waiting) this.consider(s, since(p), diff.owner, now, out);
    for (const s of diff.added) {
      if (requestStates.has(s.state)) continue;
      this.present.add(connectionKey(s));
      this.presentTuples.add(tupleKey(s));
      this.consider(s, since({ since: now, detection: diff.detection, accept: false }), diff.owner, now, out);
    }
    // Removals last: a row that changed state was just added again under the same key.
    for (const s of diff.removed) this.remove(s, diff.owner, now, out);
    return out;
  }

  private consider(s: SocketEntry, p: Pending, ownerOf: TableDiff["owner"], now: number, out: NetworkObservation[]): void {
    const waited = now - p.since;
    this.pending.delete(s);
    if (s.inode === 0) {
      // The same connection is (or was) reported from a row that has its inode.
      if (this.reportedTuples.has(tupleKey(s)) || this.presentTuples.count(tupleKey(s)) > 1) return;
      const queued = s.transport === "tcp" && acceptQueueStates.has(s.state) && this.classify(s, now) === "inbound";
      if (queued && waited < this.options.acceptGraceMs) this.pending.set(s, { ...p, accept: true });
      else this.report(s, undefined, queued ? "unknown" : "closed", p.detection, now, out);
      return;
    }
    const owner = ownerOf(s.inode);
    if (owner === undefined && waited < this.options.ownerGraceMs) this.pending.set(s, p);
    else this.report(s, owner, owner === undefined ? "unknown" : "process", p.detection, now, out);
  }

  private report(s: SocketEntry, owner: Owner | undefined, attribution: Attribution, detection: NetworkDetection, now: number, out: NetworkObservation[]): void {
    const key = connectionKey(s);
    if (this.reported.has(key)) return;
    this.reported.add(key);
    this.reportedTuples.add(tupleKey(s));
    const listen = isListener(s);
    if (s.transport === "udp" && !listen) {
      const flow = flowKey(s, owner);
      const state = this.flows.get(flow);
      this.flows.set(flow, { live: (state?.live ?? 0) + 1, idleSince: Infinity });
      this.flowOf.set(s, flow);
      if (state !== undefined) return;
    }
    const observation: NetworkObservation = { kind: listen ? "listen" : "connection", socket: s, attribution, detection };
    if (!listen) observation.direction = this.classify(s, now);
    if (owner !== undefined) observation.owner = owner;
    out.push(observation);
  }

  private remove(s: SocketEntry, ownerOf: TableDiff["owner"], now: number, out: NetworkObservation[]): void {
    if (requestStates.has(s.state)) return;
    // Gone before its owner or its accept was seen: it still happened.
    const waiting = this.pending.get(s);
    if (waiting !== undefined) this.consider(s, { ...waiting, since: -Infinity }, ownerOf, now, out);
    if (isListener(s)) this.removeListener(s, now);
    const flow = this.flowOf.get(s);
    if (flow !== undefined) {
      this.flowOf.delete(s);
      const state = this.flows.get(flow);
      if (state !== undefined && --state.live === 0) state.idleSince = now;
    }
    if (this.present.remove(connectionKey(s))) this.reported.delete(connectionKey(s));
    if (this.presentTuples.remove(tupleKey(s))) this.reportedTuples.delete(tupleKey(s));
  }

  private classify(s: SocketEntry, now: number): Direction {
    return classify(s, (transport, port) => {
      const current = this.listeners.get(`${transport}:${port}`) ?? [];
      const past = [...this.pastListeners].filter(([k, until]) => until > now && k.startsWith(`${transport}:${port}:`)).map(([k]) => k.split(":").slice(2).join(":"));
      return [...current, ...past];
    });
  }

  private addListener(s: SocketEntry): void {
    const key = `${s.transport}:${s.localPort}`;
    this.listeners.set(key, [...(this.listeners.get(key) ?? []), s.localAddress]);
  }

  private removeListener(s: SocketEntry, now: number): void {
    const key = `${s.transport}:${s.localPort}`;
    const addresses = this.listeners.get(key) ?? [];
    const i = addresses.indexOf(s.localAddress);
    if (i >= 0) addresses.splice(i, 1);
    if (addresses.length === 0) this.listeners.delete(key);
    this.pastListeners.set(`${key}:${s.localAddress}`, now + this.options.listenerMemoryMs);
  }

  private expire(now: number): void {
    for (const [flow, state] of this.flows) if (now - state.idleSince > this.options.flowIdleMs) this.flows.delete(flow);
    for (const [key, until] of this.pastListeners) if (until <= now) this.pastListeners.delete(key);
  }
}
