/** What an injector is configured with: the same shape for the webhook and the `inject` CLI. */
import { DEFAULT_CLUSTER_DOMAIN, type ClusterDns } from "./pod-dns.ts";
import type { Signer } from "./policy-document.ts";
import { RUNTIME_DEFAULT_CAPABILITIES } from "./security.ts";

export type PodSecurityLevel = "privileged" | "baseline" | "restricted";

export interface InjectorConfig {
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** OTEL_* variables handed to every sidecar (endpoint, protocol, resource attributes; never credentials). */
  otelEnv: Record<string, string>;
  /** OTEL_* variables the injector has but keeps from the sidecars (credentials). */
  otelWithheld: string[];
  /** The cluster runs native sidecars (Kubernetes ≥ 1.29); a pod annotation may override. */
  nativeSidecars: boolean;
  /** The admin allows SYS_PTRACE (root sidecar) where the namespace's Pod Security level permits it. */
  allowPtrace: boolean;
  /** Capabilities the cluster's runtime gives a container that declares none (a root sidecar keeps those the app's root containers hold). */
  runtimeDefaultCapabilities: readonly string[];
  /** Pods in this namespace are never injected; those running as injectorServiceAccount there are the injector's own. */
  injectorNamespace: string;
  injectorServiceAccount: string;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  /** For every record's resource (workload.ts): the admin's cluster and cloud attributes, and which pod labels to copy. */
  workload: { resource: Record<string, string>; podLabels: readonly string[] };
  /** The cluster DNS addresses given by flag (else the kube-dns Service's), and the cluster domain. */
  clusterDnsServers: string[] | undefined;
  clusterDomain: string;
  /** Signs the policy documents it embeds (its key Secret); the offline `inject` command has none. */
  signer?: Signer;
}

export const DEFAULT_IMAGE = "microenforcer:0.1.0";

export function defaultInjectorConfig(): InjectorConfig {
  return {
    image: DEFAULT_IMAGE,
    imagePullPolicy: "IfNotPresent",
    otelEnv: {},
    otelWithheld: [],
    nativeSidecars: true,
    allowPtrace: false,
    runtimeDefaultCapabilities: RUNTIME_DEFAULT_CAPABILITIES,
    injectorNamespace: "microenforcer-system",
    injectorServiceAccount: "microenforcer-injector",
    // Fargate sizes a pod by its requests: keep the sidecar's share small, bound its memory.
    resources: { requests: { cpu: "20m", memory: "64Mi" }, limits: { cpu: "500m", memory: "160Mi" } },
    workload: { resource: {}, podLabels: [] },
    clusterDnsServers: undefined,
    clusterDomain: DEFAULT_CLUSTER_DOMAIN,
  };
}

/**
 * OTLP variables that carry credentials. They are never written into a tenant's pod spec,
 * where its owner reads them (`kubectl get pod -o yaml`); a secretKeyRef cannot reach a
 * Secret in another namespace. Sidecars send to an in-cluster collector instead, which adds
 * the credentials itself (README, "OTLP export").
 */
export const CREDENTIAL_VARIABLES: readonly string[] = ["OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS"];

/**
 * The OTEL_* part of an environment handed to sidecars, sorted so the rendered pod does not
 * depend on env order, and the credential variables left out.
 */
export function otelEnvFrom(env: NodeJS.ProcessEnv): { sidecar: Record<string, string>; withheld: string[] } {
  const entries = Object.entries(env).filter((e): e is [string, string] => e[0].startsWith("OTEL_") && e[1] !== undefined && e[1] !== "");
  const withheld = entries.filter(([name]) => CREDENTIAL_VARIABLES.includes(name)).map(([name]) => name);
  const handed = entries.filter(([name]) => !CREDENTIAL_VARIABLES.includes(name));
  return { sidecar: Object.fromEntries(handed.sort(([a], [b]) => (a < b ? -1 : 1))), withheld: withheld.sort() };
}

/** Native sidecars are on by default from Kubernetes 1.29. */
export function supportsNativeSidecars(major: number, minor: number): boolean {
  return major > 1 || (major === 1 && minor >= 29);
}

/** "1.28", "v1.30.2", "1.29+" → whether the version runs native sidecars; undefined when unreadable. */
export function parseKubeVersion(text: string): { major: number; minor: number } | undefined {
  const match = /^v?(\d+)\.(\d+)/.exec(text.trim());
  return match === null ? undefined : { major: Number(match[1]), minor: Number(match[2]) };
}

/** The cluster DNS pods are pointed at: the flag's addresses, else those found in the cluster; undefined when neither. */
export function clusterDnsOf(config: InjectorConfig, discovered: readonly string[] | undefined): ClusterDns | undefined {
  const nameservers = config.clusterDnsServers ?? discovered;
  return nameservers === undefined || nameservers.length === 0 ? undefined : { nameservers: [...nameservers], domain: config.clusterDomain };
}
