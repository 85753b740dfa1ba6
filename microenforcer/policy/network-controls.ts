/**
 * Network controls of a RuntimePolicy, pure over connection facts: blocked outbound
 * destinations (CIDR, port, DNS name glob — every field given must match), blocked
 * listening ports, and port scans (one process reaching many distinct ports or peers).
 */
import { BlockList, isIPv6 } from "node:net";
import picomatch from "picomatch";
import type { NetworkObservation } from "../net/connection-reporter.ts";
import type { PeerName } from "../net/dns-names.ts";
import type { Controls, Finding } from "./process-controls.ts";

export interface ConnectionFacts {
  direction: "outbound" | "inbound" | "listen";
  transport: "tcp" | "udp";
  localAddress: string;
  localPort: number;
  peerAddress?: string;
  peerPort?: number;
  /** The name the process resolved for the peer, when known. */
  dnsName?: string;
}

/** What the network controls decide on, from what the sensor observed and the peer's name. */
export function connectionFacts(o: NetworkObservation, name?: PeerName): ConnectionFacts {
  const s = o.socket;
  const facts: ConnectionFacts = { direction: o.kind === "listen" ? "listen" : o.direction!, transport: s.transport, localAddress: s.localAddress, localPort: s.localPort };
  if (o.kind === "connection") {
    facts.peerAddress = s.remoteAddress;
    facts.peerPort = s.remotePort;
  }
  if (name !== undefined) facts.dnsName = name.name;
  return facts;
}

type OutboundRule = NonNullable<NonNullable<Controls["network"]>["blockedOutbound"]>[number];

const subnets = new Map<string, BlockList | undefined>();

/** A BlockList holding one CIDR; undefined for a malformed CIDR (never matches). */
function subnet(cidr: string): BlockList | undefined {
  if (subnets.has(cidr)) return subnets.get(cidr);
  const [address = "", bits] = cidr.split("/");
  const type = isIPv6(address) ? "ipv6" : "ipv4";
  const prefix = bits === undefined ? (type === "ipv6" ? 128 : 32) : Number(bits);
  let list: BlockList | undefined = new BlockList();
  try {
    list.addSubnet(address, prefix, type);
  } catch {
    list = undefined;
  }
  subnets.set(cidr, list);
  return list;
}

function matchesRule(rule: OutboundRule, c: ConnectionFacts): boolean {
  if (rule.port !== undefined && rule.port !== c.peerPort) return false;
  if (rule.cidr !== undefined) {
    const address = c.peerAddress;
    if (address === undefined || !subnet(rule.cidr)?.check(address, isIPv6(address) ? "ipv6" : "ipv4")) return false;
  }
  if (rule.domain !== undefined && (c.dnsName === undefined || !picomatch.isMatch(c.dnsName, rule.domain, { nocase: true }))) return false;
  return true;
}

function describeRule(rule: OutboundRule): string {
  return Object.entries(rule)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
}

export function checkOutbound(controls: Controls, c: ConnectionFacts): Finding[] {
  const rules = controls.network?.blockedOutbound ?? [];
  if (c.direction !== "outbound") return [];
  const rule = rules.find((r) => matchesRule(r, c));
  if (rule === undefined) return [];
  const peer = `${c.dnsName ?? c.peerAddress}:${c.peerPort}`;
  return [{ control: "network", rule: describeRule(rule), reason: `outbound ${c.transport} connection to ${peer} is blocked`, block: true }];
}

export function checkListen(controls: Controls, c: ConnectionFacts): Finding[] {
  const ports = controls.network?.blockedListenPorts ?? [];
  if (c.direction !== "listen" || !ports.includes(c.localPort)) return [];
  return [{ control: "network", rule: `blockedListenPorts=${c.localPort}`, reason: `listening on ${c.transport} port ${c.localPort} is blocked`, block: true }];
}

/**
 * Sliding window of distinct destinations per process. One finding per burst: after
 * reporting, a process must reach the threshold again with new destinations.
 */
export class PortScanDetector {
  private readonly seen = new Map<string, Map<string, number>>();

  observe(controls: Controls, processKey: string, c: ConnectionFacts, nowMs: number): Finding[] {
    const rule = controls.portScan;
    if (rule === undefined || !rule.detect || c.direction !== "outbound" || c.peerAddress === undefined) return [];
    const windowMs = rule.windowSeconds * 1000;
    let destinations = this.seen.get(processKey);
    if (destinations === undefined) {
      destinations = new Map();
      this.seen.set(processKey, destinations);
    }
    for (const [destination, at] of destinations) if (nowMs - at > windowMs) destinations.delete(destination);
    destinations.set(`${c.peerAddress}:${c.peerPort}`, nowMs);
    if (destinations.size < rule.distinctPorts) return [];
    destinations.clear();
    return [
      {
        control: "portScan",
        rule: `distinctPorts=${rule.distinctPorts} windowSeconds=${rule.windowSeconds}`,
        reason: `reached ${rule.distinctPorts} distinct destinations within ${rule.windowSeconds} s`,
        block: true,
      },
    ];
  }

  /** Forgets a process that exited. */
  forget(processKey: string): void {
    this.seen.delete(processKey);
  }
}
