/**
 * Network observations → records. Attribute names follow the OTel network and server
 * semantic conventions; the owning process is named with the same attributes as its exec
 * record.
 */
import { networkType, type NetworkObservation } from "../net/connection-reporter.ts";
import type { PeerName } from "../net/dns-names.ts";
import type { BootClock } from "../proc/boot-clock.ts";
import { containerLabel, type ProcessInfo } from "../tracker/process-tracker.ts";
import { processAttributes, type Forensics } from "./process-records.ts";
import { Attr, type Attributes } from "./attributes.ts";
import { EventNames, type SensorRecord } from "./record.ts";

export interface NetworkEvent {
  observation: NetworkObservation;
  /** The owner, when it was found and is known to the tracker. */
  process?: ProcessInfo;
  /** The peer's DNS name (outbound connections only). */
  name?: PeerName;
  observedAt: number;
}

/** The kernel's TCP state names (proc/socket-table.ts) → the well-known values of `network.connection.state`. */
const CONNECTION_STATES: Readonly<Record<string, string>> = {
  ESTABLISHED: "established",
  SYN_SENT: "syn_sent",
  SYN_RECV: "syn_received",
  // A request socket (SYN received, not yet a full socket): the same state seen from userspace.
  NEW_SYN_RECV: "syn_received",
  FIN_WAIT1: "fin_wait_1",
  FIN_WAIT2: "fin_wait_2",
  TIME_WAIT: "time_wait",
  CLOSE: "closed",
  CLOSE_WAIT: "close_wait",
  LAST_ACK: "last_ack",
  LISTEN: "listen",
  CLOSING: "closing",
};

/** A TCP socket's state; a connected UDP socket's `established`; none for an unconnected UDP socket (a listen record says what it is). */
function connectionState(o: NetworkObservation): string | undefined {
  const s = o.socket;
  if (s.transport === "udp") return o.kind === "listen" ? undefined : "established";
  return CONNECTION_STATES[s.state];
}

const endpoint = (address: string, port: number): string => (address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`);

function describeOwner(e: NetworkEvent): string {
  const p = e.process;
  if (p !== undefined) return `by ${p.exe?.path ?? p.comm} (pid ${p.pid}) in container ${containerLabel(p.container)}`;
  if (e.observation.owner !== undefined) return `by pid ${e.observation.owner.pid}`;
  return e.observation.attribution === "closed" ? "(closed by its owner before the sensor looked: unattributed)" : "(no process the sensor can read holds it: unattributed)";
}

export function networkRecord(e: NetworkEvent, clock: BootClock, forensics: Forensics): SensorRecord {
  const o = e.observation;
  const s = o.socket;
  const a: Attributes = e.process !== undefined ? processAttributes(e.process, clock, forensics) : {};
  if (e.process === undefined && o.owner !== undefined) a[Attr.processPid] = o.owner.pid;
  a[Attr.networkTransport] = s.transport;
  a[Attr.networkType] = networkType(o.kind === "listen" ? s.localAddress : s.remoteAddress);
  a[Attr.networkLocalAddress] = s.localAddress;
  a[Attr.networkLocalPort] = s.localPort;
  const state = connectionState(o);
  if (state !== undefined) a[Attr.networkConnectionState] = state;
  a[Attr.networkAttribution] = o.attribution;
  if (s.inode !== 0) a[Attr.networkInode] = s.inode;
  a[Attr.sensorDetection] = o.detection;
  const local = endpoint(s.localAddress, s.localPort);
  if (o.kind === "listen") {
    return record(EventNames.networkListen, `listen ${s.transport} ${local} ${describeOwner(e)}`, a, e.observedAt);
  }
  a[Attr.networkPeerAddress] = s.remoteAddress;
  a[Attr.networkPeerPort] = s.remotePort;
  a[Attr.networkDirection] = o.direction!;
  // Server and client as the semantic conventions see a connection: we are the client of an
  // outbound one (the peer serves on its port), the server of an inbound one.
  if (o.direction === "outbound") {
    a[Attr.serverPort] = s.remotePort;
  } else {
    a[Attr.clientAddress] = s.remoteAddress;
    a[Attr.clientPort] = s.remotePort;
    a[Attr.serverPort] = s.localPort;
  }
  if (e.name !== undefined) {
    // server.address only for the name the process itself resolved; a PTR name is the
    // address owner's claim, not the name the process connected to.
    a[e.name.source === "forwarder" ? Attr.serverAddress : Attr.dnsReverseName] = e.name.name;
    a[Attr.dnsSource] = e.name.source;
  }
  const peer = e.name === undefined ? endpoint(s.remoteAddress, s.remotePort) : `${e.name.name} (${endpoint(s.remoteAddress, s.remotePort)})`;
  const arrow = o.direction === "inbound" ? "←" : "→";
  return record(EventNames.networkConnection, `${o.direction} ${s.transport} ${local} ${arrow} ${peer} ${describeOwner(e)}`, a, e.observedAt);
}

function record(eventName: SensorRecord["eventName"], body: string, attributes: Attributes, observedAt: number): SensorRecord {
  // When the connection was made is unknown: what the record can say is when it was seen.
  return { eventName, severity: "INFO", body, attributes, timestamp: observedAt, observedTimestamp: observedAt };
}
