/**
 * The pod's resolver pointed at the sidecar's DNS forwarder, so that connections carry the
 * name the process asked for. The kubelet's own ClusterFirst rendering
 * (pkg/kubelet/network/dns: the cluster DNS, searches `<ns>.svc.<domain> svc.<domain>
 * <domain>`, `ndots:5`, then the pod's own dnsConfig appended, duplicates left out, its
 * options overriding by name) becomes `dnsPolicy: None` with the forwarder first, the
 * cluster DNS after it and `timeout:1`: a sidecar that cannot answer costs a lookup at most
 * a second (nothing when it is not listening: loopback refuses at once) before the cluster
 * DNS answers. A `None` pod keeps its own servers after the forwarder.
 *
 * dnsPolicy and dnsConfig cannot change after creation, so the sidecar keeps relaying
 * whatever later policies say (microenforcer/net/dns-service.ts). Pure: the webhook and
 * `inject` share it.
 */
import { forwarderNameserver, parseEndpoint } from "../microenforcer/sidecar-contract.ts";
import { forwarderEnabled, forwarderListen, type RuntimePolicySpec } from "../policies/schema.ts";
import { arrayAt, ensureArray, ensureObject, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";

/** The cluster's DNS service (the kubelet's clusterDNS) and domain. */
export interface ClusterDns {
  nameservers: string[];
  domain: string;
}

export const DEFAULT_CLUSTER_DOMAIN = "cluster.local";

/**
 * Lets non-root processes of the pod listen below 1024 in the pod's own network namespace:
 * a safe sysctl (namespaced, kubelet ≥ 1.22) that every Pod Security level allows. 0, not 53:
 * containerd 2 and Docker already set 0, so a lower-bound 53 would take ports 1–52 away from
 * apps there.
 */
export const UNPRIVILEGED_PORT_SYSCTL = { name: "net.ipv4.ip_unprivileged_port_start", value: "0" } as const;

/** Kubernetes API validation limits (pkg/apis/core/validation: MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars). */
const MAX_NAMESERVERS = 3;
const MAX_SEARCHES = 32;
const MAX_SEARCH_CHARS = 2048;

interface DnsOption {
  name: string;
  value?: string;
}

export interface PodDnsChange {
  dnsConfig: { nameservers: string[]; searches?: string[]; options: DnsOption[] };
  /** Added to the pod's securityContext.sysctls: the sidecar may not listen on port 53 without it. */
  addSysctl: boolean;
}

export interface PodDnsInput {
  spec: JsonObject;
  /** The pod's namespace (its search list starts with `<ns>.svc.<domain>`). */
  namespace: string | undefined;
  policy: RuntimePolicySpec;
  clusterDns: ClusterDns | undefined;
  /** The sidecar listens below 1024 on its own: root holding NET_BIND_SERVICE. */
  sidecarBindsLowPorts: boolean;
}

const noNames = "the pod's DNS is left as it is and its connections carry no DNS names";

const unique = <T>(items: readonly T[]): T[] => [...new Set(items)];

/** The pod's own dnsConfig options, as the API holds them ({name, value?}). */
function ownOptions(dnsConfig: JsonObject | undefined): DnsOption[] {
  return arrayAt(dnsConfig, "options").flatMap((o) => {
    const name = stringAt(o, "name");
    if (name === undefined || name === "") return [];
    const value = stringAt(o, "value");
    return [value === undefined ? { name } : { name, value }];
  });
}

/** `base`, then `own`: a name given again replaces the earlier option (the kubelet's mergeDNSOptions). */
function mergeOptions(base: DnsOption[], own: DnsOption[]): DnsOption[] {
  const merged = new Map<string, DnsOption>();
  for (const option of [...base, ...own]) {
    merged.delete(option.name);
    merged.set(option.name, option);
  }
  return [...merged.values()];
}

/** The searches within the API's limits: later ones left out first, as the kubelet does. */
function fitSearches(searches: string[]): { kept: string[]; dropped: string[] } {
  const kept = searches.slice(0, MAX_SEARCHES);
  while (kept.join(" ").length > MAX_SEARCH_CHARS) kept.pop();
  return { kept, dropped: searches.slice(kept.length) };
}

/** Why the forwarder could not listen on port 53 as this pod is, or undefined. */
function bindProblem(spec: JsonObject, input: PodDnsInput): string | undefined {
  if (input.sidecarBindsLowPorts) return undefined;
  const set = arrayAt(objectAt(spec, "securityContext"), "sysctls").find((s) => stringAt(s, "name") === UNPRIVILEGED_PORT_SYSCTL.name);
  if (set === undefined) return undefined;
  const value = Number(stringAt(set, "value"));
  return Number.isInteger(value) && value <= 53
    ? undefined
    : `the pod sets ${UNPRIVILEGED_PORT_SYSCTL.name}=${String(stringAt(set, "value"))} and the sidecar (not root with NET_BIND_SERVICE) could not listen on port 53`;
}

/** A container that declares port 53, where the forwarder would listen. */
function port53(spec: JsonObject): string | undefined {
  const containers = [...arrayAt(spec, "initContainers"), ...arrayAt(spec, "containers")];
  const found = containers.find((c) => arrayAt(c, "ports").some((p) => isObject(p) && p.containerPort === 53));
  return found === undefined ? undefined : (stringAt(found, "name") ?? "?");
}

/** What to change in the pod so its resolver asks the forwarder; warnings say why not, or what had to give way. */
export function podDns(input: PodDnsInput): { change?: PodDnsChange; warnings: string[] } {
  if (!forwarderEnabled(input.policy)) return { warnings: [] };
  const { spec } = input;
  const leaveAlone = (why: string) => ({ warnings: [`${why}; ${noNames}`] });
  if (spec.hostNetwork === true) return leaveAlone("hostNetwork pod: it resolves with the node's DNS settings, which the sidecar's DNS forwarder does not see");
  const dnsPolicy = stringAt(spec, "dnsPolicy") ?? "ClusterFirst";
  if (dnsPolicy === "Default") return leaveAlone("dnsPolicy Default: the pod resolves with the node's DNS settings, which the injector leaves to it");
  if (dnsPolicy !== "None" && dnsPolicy !== "ClusterFirst" && dnsPolicy !== "ClusterFirstWithHostNet") return leaveAlone(`dnsPolicy ${dnsPolicy} is not one the injector knows`);
  const listenText = forwarderListen(input.policy);
  const listen = parseEndpoint(listenText);
  const forwarder = listen === undefined ? undefined : forwarderNameserver(listen);
  if (forwarder === undefined) return leaveAlone(`the policy's DNS forwarder listens on ${listenText}, where no resolver asks (port 53 on the pod's loopback)`);
  const container = port53(spec);
  if (container !== undefined) return leaveAlone(`container ${container} declares port 53, where the DNS forwarder would listen`);
  const bind = bindProblem(spec, input);
  if (bind !== undefined) return leaveAlone(bind);

  const own = objectAt(spec, "dnsConfig");
  const ownNameservers = arrayAt(own, "nameservers").filter((n): n is string => typeof n === "string");
  if (ownNameservers.includes(forwarder)) return leaveAlone(`the pod's own dnsConfig already asks ${forwarder}, where the DNS forwarder would listen (a resolver of its own?)`);
  const ownSearches = arrayAt(own, "searches").filter((s): s is string => typeof s === "string");
  const warnings: string[] = [];
  let nameservers: string[];
  let searches: string[];
  let options: DnsOption[];
  if (dnsPolicy === "None") {
    nameservers = [forwarder, ...ownNameservers];
    searches = ownSearches;
    options = mergeOptions([], ownOptions(own));
  } else {
    const { clusterDns, namespace } = input;
    if (clusterDns === undefined || clusterDns.nameservers.length === 0) {
      return leaveAlone("the cluster DNS address is unknown (no kube-system/kube-dns Service read, no --cluster-dns)");
    }
    if (namespace === undefined) return leaveAlone("the pod has no namespace, which its DNS search list starts with");
    const domain = clusterDns.domain;
    nameservers = unique([forwarder, ...clusterDns.nameservers, ...ownNameservers]);
    searches = unique([`${namespace}.svc.${domain}`, `svc.${domain}`, domain, ...ownSearches]);
    options = mergeOptions([{ name: "ndots", value: "5" }], ownOptions(own));
  }
  if (!options.some((o) => o.name === "timeout")) options.push({ name: "timeout", value: "1" });
  if (nameservers.length > MAX_NAMESERVERS) {
    warnings.push(`a pod's resolver asks at most ${MAX_NAMESERVERS} nameservers: ${nameservers.slice(MAX_NAMESERVERS).join(", ")} left out after the DNS forwarder and the cluster DNS`);
    nameservers = nameservers.slice(0, MAX_NAMESERVERS);
  }
  const fitted = fitSearches(searches);
  if (fitted.dropped.length > 0) warnings.push(`the DNS search list holds at most ${MAX_SEARCHES} domains and ${MAX_SEARCH_CHARS} characters: ${fitted.dropped.join(", ")} left out`);
  const dnsConfig: PodDnsChange["dnsConfig"] = fitted.kept.length > 0 ? { nameservers, searches: fitted.kept, options } : { nameservers, options };
  const hasSysctl = arrayAt(objectAt(spec, "securityContext"), "sysctls").some((s) => stringAt(s, "name") === UNPRIVILEGED_PORT_SYSCTL.name);
  return { change: { dnsConfig, addSysctl: !input.sidecarBindsLowPorts && !hasSysctl }, warnings };
}

/** The pod-level fields as they were before the injector pointed the resolver at the forwarder (null: absent). */
export interface DnsBefore {
  dnsPolicy: string | null;
  dnsConfig: JsonObject | null;
  /** The sysctl was added (and securityContext created for it, when `securityContext` is false). */
  sysctl: boolean;
  securityContext: boolean;
}

/** Writes the change into `spec`; returns what removal puts back. */
export function applyPodDns(spec: JsonObject, change: PodDnsChange): DnsBefore {
  const before: DnsBefore = {
    dnsPolicy: stringAt(spec, "dnsPolicy") ?? null,
    dnsConfig: objectAt(spec, "dnsConfig") ?? null,
    sysctl: change.addSysctl,
    securityContext: isObject(spec.securityContext),
  };
  spec.dnsPolicy = "None";
  spec.dnsConfig = change.dnsConfig;
  if (change.addSysctl) ensureArray(ensureObject(spec, "securityContext"), "sysctls").push({ ...UNPRIVILEGED_PORT_SYSCTL });
  return before;
}

/** Puts back what applyPodDns changed. */
export function restorePodDns(spec: JsonObject, before: DnsBefore): void {
  if (before.dnsPolicy === null) delete spec.dnsPolicy;
  else spec.dnsPolicy = before.dnsPolicy;
  if (before.dnsConfig === null) delete spec.dnsConfig;
  else spec.dnsConfig = before.dnsConfig;
  if (!before.sysctl) return;
  const context = objectAt(spec, "securityContext");
  if (context === undefined) return;
  const sysctls = arrayAt(context, "sysctls").filter((s) => stringAt(s, "name") !== UNPRIVILEGED_PORT_SYSCTL.name);
  if (sysctls.length > 0) context.sysctls = sysctls;
  else delete context.sysctls;
  if (!before.securityContext && Object.keys(context).length === 0) delete spec.securityContext;
}
