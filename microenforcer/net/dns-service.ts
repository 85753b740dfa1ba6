/**
 * Where peer names come from under the current policy (`spec.dns`): runs the forwarder
 * when the policy wants names and the pod's resolver asks it, keeps a reverse-lookup cache
 * when asked for, and switches both as a reloaded policy says. Says what became of the
 * forwarder (records/sensor-records.ts makes that a status record).
 *
 * Once the forwarder serves the pod's resolver it keeps serving it, at that address, until
 * the sidecar exits: the resolver configuration is fixed for the pod's life (dnsPolicy and
 * dnsConfig cannot change), so a later policy decides only whether names are recorded and
 * which upstream servers are asked. Turning names off leaves a transparent relay.
 */
import { readFileSync } from "node:fs";
import { forwarderEnabled, forwarderListen, type RuntimePolicy } from "../../policies/schema.ts";
import { parseEndpoint, resolverAsks, type Endpoint } from "../sidecar-contract.ts";
import { DnsForwarder, resolvConfNameservers, resolvConfServers } from "./dns-forwarder.ts";
import { DnsAnswerCache, ReverseLookupCache, type PeerName, type PeerNames } from "./dns-names.ts";

type DnsSpec = NonNullable<RuntimePolicy["spec"]["dns"]>;

const forwarderTimeoutMs = 2000;

/** What became of the forwarder a policy asked for. */
export type ForwarderOutcome =
  /** Serving the pod's resolver; `names`: connections are named from its answers. */
  | { kind: "listening"; listen: string; upstream: string[]; names: boolean }
  /** Wanted, not started: the pod's resolver asks other servers, so it would see no query. */
  | { kind: "not-asked"; listen: string; nameservers: string[]; resolvConf: string }
  /** Not started: `problem` says why (a malformed address, no upstream). */
  | { kind: "refused"; problem: string }
  | { kind: "listen-failed"; listen: string; error: string };

const show = (endpoints: readonly Endpoint[]) => endpoints.map((u) => `${u.host}:${u.port}`);

export class DnsService {
  private readonly resolvConf: string;
  private config = "";
  private forwarder?: { server: DnsForwarder; cache: DnsAnswerCache; listen: string; upstream: string[]; names: boolean };
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
    const wanted = forwarderEnabled(policy.spec);
    const config = JSON.stringify({ dns, wanted });
    if (config === this.config) return [];
    this.config = config;
    const outcomes: ForwarderOutcome[] = [];
    const running = this.forwarder;
    if (running !== undefined) {
      const outcome = this.retune(running, dns, wanted);
      if (outcome !== undefined) outcomes.push(outcome);
    } else if (wanted) {
      outcomes.push(await this.startForwarder(policy));
    }
    this.reverse?.cancel();
    this.reverse = dns.reverseLookup ? new ReverseLookupCache() : undefined;
    const named = this.forwarder?.names === true ? this.forwarder.cache : undefined;
    const reverse = this.reverse;
    this.current =
      named === undefined && reverse === undefined
        ? undefined
        : { lookup: (address: string, now: number): PeerName | "pending" | undefined => named?.lookup(address, now) ?? reverse?.lookup(address, now) };
    return outcomes;
  }

  async stop(): Promise<void> {
    this.current = undefined;
    this.reverse?.cancel();
    this.reverse = undefined;
    await this.forwarder?.server.stop();
    this.forwarder = undefined;
  }

  /** The running forwarder under a new policy: same address, the policy's upstream and names. */
  private retune(running: NonNullable<DnsService["forwarder"]>, dns: DnsSpec, wanted: boolean): ForwarderOutcome | undefined {
    const listen = parseEndpoint(running.listen)!;
    const upstream = this.upstream(dns, listen);
    if (typeof upstream === "string") return { kind: "refused", problem: `${upstream}; still asking ${running.upstream.join(", ")}` };
    const shown = show(upstream);
    if (shown.join() === running.upstream.join() && wanted === running.names) return undefined;
    running.server.setUpstream(upstream);
    running.upstream = shown;
    running.names = wanted;
    return { kind: "listening", listen: running.listen, upstream: shown, names: wanted };
  }

  /** The policy's upstream servers, else the resolv.conf's other nameservers; a string says what is wrong. */
  private upstream(dns: DnsSpec, listen: Endpoint): Endpoint[] | string {
    const configured = dns.forwarder?.upstream;
    if (configured !== undefined && configured.length > 0) {
      const parsed = configured.map((u) => parseEndpoint(u));
      if (parsed.some((u) => u === undefined)) return `upstream ${JSON.stringify(configured)} must be ADDRESS[:PORT] each`;
      return parsed as Endpoint[];
    }
    const servers = resolvConfServers(this.readResolvConf(), listen);
    return servers.length > 0 ? servers : `no upstream server (none configured, none in ${this.resolvConf} but the forwarder itself)`;
  }

  private readResolvConf(): string {
    try {
      return readFileSync(this.resolvConf, "utf8");
    } catch {
      return "";
    }
  }

  private async startForwarder(policy: RuntimePolicy): Promise<ForwarderOutcome> {
    const listenText = forwarderListen(policy.spec);
    const listen = parseEndpoint(listenText);
    if (listen === undefined) return { kind: "refused", problem: `listen address ${JSON.stringify(listenText)} is not ADDRESS[:PORT]` };
    const nameservers = resolvConfNameservers(this.readResolvConf());
    if (!resolverAsks(nameservers, listen)) return { kind: "not-asked", listen: listenText, nameservers, resolvConf: this.resolvConf };
    const upstream = this.upstream(policy.spec.dns ?? { reverseLookup: false }, listen);
    if (typeof upstream === "string") return { kind: "refused", problem: upstream };
    const cache = new DnsAnswerCache();
    const server = new DnsForwarder({ listen, upstream, timeoutMs: forwarderTimeoutMs }, cache);
    try {
      await server.start();
    } catch (err) {
      return { kind: "listen-failed", listen: listenText, error: (err as Error).message };
    }
    this.forwarder = { server, cache, listen: listenText, upstream: show(upstream), names: true };
    return { kind: "listening", listen: listenText, upstream: show(upstream), names: true };
  }
}
