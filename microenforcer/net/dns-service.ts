/**
 * Where peer names come from under the current policy (`spec.dns`): runs the forwarder
 * when it is enabled, keeps a reverse-lookup cache when asked for, and switches both as a
 * reloaded policy says. Says what became of the forwarder (records/sensor-records.ts
 * makes that a status record).
 */
import { readFileSync } from "node:fs";
import type { RuntimePolicy } from "../../policies/schema.ts";
import { DnsForwarder, parseEndpoint, resolvConfServers, type Endpoint } from "./dns-forwarder.ts";
import { DnsAnswerCache, ReverseLookupCache, type PeerName, type PeerNames } from "./dns-names.ts";

type DnsSpec = NonNullable<RuntimePolicy["spec"]["dns"]>;

const forwarderTimeoutMs = 2000;

/** What became of the forwarder a policy asked for. */
export type ForwarderOutcome =
  | { kind: "listening"; listen: string; upstream: string[] }
  /** Not started: `problem` says why (a malformed address, no upstream). */
  | { kind: "refused"; problem: string }
  | { kind: "listen-failed"; listen: string; error: string };

export class DnsService {
  private readonly resolvConf: string;
  private config = "";
  private forwarder?: { server: DnsForwarder; cache: DnsAnswerCache };
  private reverse?: ReverseLookupCache;
  private current: PeerNames | undefined;

  constructor(resolvConf = "/etc/resolv.conf") {
    this.resolvConf = resolvConf;
  }

  /** The names source for connections now (undefined: no names). */
  names(): PeerNames | undefined {
    return this.current;
  }

  /** Brings the forwarder and the reverse cache in line with the policy. */
  async apply(policy: RuntimePolicy): Promise<ForwarderOutcome[]> {
    const dns: DnsSpec = policy.spec.dns ?? { reverseLookup: false };
    const config = JSON.stringify(dns);
    if (config === this.config) return [];
    this.config = config;
    await this.stop();
    const outcomes: ForwarderOutcome[] = [];
    if (dns.forwarder?.enabled) outcomes.push(await this.startForwarder(dns.forwarder));
    if (dns.reverseLookup) this.reverse = new ReverseLookupCache();
    const { forwarder, reverse } = this;
    this.current =
      forwarder === undefined && reverse === undefined
        ? undefined
        : {
            lookup: (address: string, now: number): PeerName | "pending" | undefined => forwarder?.cache.lookup(address, now) ?? reverse?.lookup(address, now),
          };
    return outcomes;
  }

  async stop(): Promise<void> {
    this.current = undefined;
    this.reverse?.cancel();
    this.reverse = undefined;
    await this.forwarder?.server.stop();
    this.forwarder = undefined;
  }

  private async startForwarder(spec: NonNullable<DnsSpec["forwarder"]>): Promise<ForwarderOutcome> {
    const listen = parseEndpoint(spec.listen);
    if (listen === undefined) return { kind: "refused", problem: `listen address ${JSON.stringify(spec.listen)} is not ADDRESS[:PORT]` };
    let upstream: Endpoint[];
    if (spec.upstream !== undefined && spec.upstream.length > 0) {
      const parsed = spec.upstream.map((u) => parseEndpoint(u));
      if (parsed.some((u) => u === undefined)) return { kind: "refused", problem: `upstream ${JSON.stringify(spec.upstream)} must be ADDRESS[:PORT] each` };
      upstream = parsed as Endpoint[];
    } else {
      try {
        upstream = resolvConfServers(readFileSync(this.resolvConf, "utf8"), listen);
      } catch {
        upstream = [];
      }
    }
    if (upstream.length === 0) return { kind: "refused", problem: `no upstream server (none configured, none in ${this.resolvConf})` };
    const cache = new DnsAnswerCache();
    const server = new DnsForwarder({ listen, upstream, timeoutMs: forwarderTimeoutMs }, cache);
    try {
      await server.start();
    } catch (err) {
      return { kind: "listen-failed", listen: spec.listen, error: (err as Error).message };
    }
    this.forwarder = { server, cache };
    return { kind: "listening", listen: spec.listen, upstream: upstream.map((u) => `${u.host}:${u.port}`) };
  }
}
