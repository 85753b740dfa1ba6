/**
 * Names for peer addresses, so that a connection record says `api.example.com`, not just
 * an IP. Two sources, chosen by the policy's `spec.dns`:
 * - `forwarder`: what the pod's processes asked the sidecar's DNS forwarder, and the
 *   addresses it answered (the name the process actually resolved);
 * - `reverse`: a PTR lookup of the peer (often a provider's generic name, and a lookup
 *   the connection waits for, briefly: see NetworkMonitor).
 */
import { Resolver } from "node:dns";
import { decode, type Packet } from "dns-packet";

export type DnsSource = "forwarder" | "reverse";

export interface PeerName {
  name: string;
  source: DnsSource;
}

export interface PeerNames {
  /** The name of `address` now; `pending` while a lookup that may still name it is in flight. */
  lookup(address: string, now: number): PeerName | "pending" | undefined;
}

/**
 * address → the name last asked for that answered with it. Entries live for their TTL but
 * at least minTtlMs: clients cache answers and keep connection pools far longer than TTLs.
 * Bounded: the oldest entries go first.
 */
export class DnsAnswerCache implements PeerNames {
  private readonly entries = new Map<string, { name: string; until: number }>();
  private readonly minTtlMs: number;
  private readonly maxEntries: number;

  constructor(minTtlMs = 300_000, maxEntries = 10_000) {
    this.minTtlMs = minTtlMs;
    this.maxEntries = maxEntries;
  }

  /** Records the A/AAAA answers of a response under the name the client asked for. */
  recordResponse(packet: Packet, now: number): void {
    const asked = packet.questions?.[0]?.name;
    if (asked === undefined) return;
    for (const answer of packet.answers ?? []) {
      if ((answer.type !== "A" && answer.type !== "AAAA") || typeof answer.data !== "string") continue;
      this.entries.delete(answer.data); // re-insert: Map order is age order
      this.entries.set(answer.data, { name: asked.replace(/\.$/, ""), until: now + Math.max((answer.ttl ?? 0) * 1000, this.minTtlMs) });
    }
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }

  lookup(address: string, now: number): PeerName | undefined {
    const entry = this.entries.get(address);
    if (entry === undefined || entry.until < now) return undefined;
    return { name: entry.name, source: "forwarder" };
  }
}

/** Parses a DNS message; undefined for anything that is not one. */
export function decodeMessage(message: Buffer): Packet | undefined {
  try {
    return decode(message);
  } catch {
    return undefined;
  }
}

const maxReverseEntries = 10_000;
const ttlMs = 300_000;
const negativeTtlMs = 60_000;

/**
 * Reverse (PTR) lookups through the pod's resolver (1 s timeout), cached: names for 5 min,
 * failures for 1 min, so a peer costs one lookup however many connections it gets.
 */
export class ReverseLookupCache implements PeerNames {
  private readonly resolver = new Resolver({ timeout: 1000, tries: 1 });
  private readonly results = new Map<string, { name?: string; until: number }>();
  private readonly inFlight = new Set<string>();

  lookup(address: string, now: number): PeerName | "pending" | undefined {
    const cached = this.results.get(address);
    if (cached !== undefined && cached.until >= now) return cached.name === undefined ? undefined : { name: cached.name, source: "reverse" };
    if (!this.inFlight.has(address)) {
      this.inFlight.add(address);
      this.resolver.reverse(address, (err, names) => {
        this.inFlight.delete(address);
        const name = err === null ? names[0] : undefined;
        const at = Date.now();
        this.results.set(address, name === undefined ? { until: at + negativeTtlMs } : { name, until: at + ttlMs });
        if (this.results.size > maxReverseEntries) this.results.delete(this.results.keys().next().value!);
      });
    }
    return "pending";
  }

  cancel(): void {
    this.resolver.cancel();
  }
}
