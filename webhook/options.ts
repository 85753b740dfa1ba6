/** Command-line options shared by `microenforcer inject` and `microenforcer webhook`. */
import { isIP } from "node:net";
import { loadPolicyFile } from "../policies/load.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { defaultInjectorConfig, otelEnvFrom, parseKubeVersion, supportsNativeSidecars, type InjectorConfig } from "./config.ts";
import { memoryBytes } from "./sidecar-heap.ts";

export class UsageError extends Error {}

export const injectorOptions = {
  policy: { type: "string" },
  image: { type: "string" },
  "kube-version": { type: "string" },
  "allow-ptrace": { type: "boolean" },
  "runtime-default-capabilities": { type: "string" },
  "injector-namespace": { type: "string" },
  "injector-service-account": { type: "string" },
  "sidecar-memory": { type: "string" },
  "sidecar-memory-request": { type: "string" },
  "sidecar-cpu": { type: "string" },
  "sidecar-cpu-request": { type: "string" },
  "pod-labels": { type: "string" },
  "cluster-name": { type: "string" },
  "cloud-provider": { type: "string" },
  "cloud-platform": { type: "string" },
  "cloud-region": { type: "string" },
  "cloud-account-id": { type: "string" },
  "cluster-dns": { type: "string" },
  "cluster-domain": { type: "string" },
} as const;

export interface InjectorOptionValues {
  policy?: string;
  image?: string;
  "kube-version"?: string;
  "allow-ptrace"?: boolean;
  "runtime-default-capabilities"?: string;
  "injector-namespace"?: string;
  "injector-service-account"?: string;
  "sidecar-memory"?: string;
  "sidecar-memory-request"?: string;
  "sidecar-cpu"?: string;
  "sidecar-cpu-request"?: string;
  "pod-labels"?: string;
  "cluster-name"?: string;
  "cloud-provider"?: string;
  "cloud-platform"?: string;
  "cloud-region"?: string;
  "cloud-account-id"?: string;
  "cluster-dns"?: string;
  "cluster-domain"?: string;
}

/** `--kube-version 1.28` → whether native sidecars are used; undefined when not given. */
export function nativeSidecarsFor(kubeVersion: string | undefined): boolean | undefined {
  if (kubeVersion === undefined) return undefined;
  const version = parseKubeVersion(kubeVersion);
  if (version === undefined) throw new UsageError(`--kube-version must look like 1.30, not '${kubeVersion}'`);
  return supportsNativeSidecars(version.major, version.minor);
}

export function injectorConfigFrom(values: InjectorOptionValues, env: NodeJS.ProcessEnv): InjectorConfig {
  const config = defaultInjectorConfig();
  if (values.image !== undefined) {
    if (values.image.trim() === "") throw new UsageError("--image must not be empty");
    config.image = values.image;
  }
  config.nativeSidecars = nativeSidecarsFor(values["kube-version"]) ?? config.nativeSidecars;
  config.allowPtrace = values["allow-ptrace"] ?? false;
  const defaults = values["runtime-default-capabilities"];
  if (defaults !== undefined) {
    const names = defaults.split(",").map((n) => n.trim().toUpperCase().replace(/^CAP_/, "")).filter((n) => n !== "");
    const bad = names.find((n) => !/^[A-Z_]+$/.test(n));
    if (bad !== undefined) throw new UsageError(`--runtime-default-capabilities: '${bad}' is not a capability name (e.g. CHOWN,KILL)`);
    config.runtimeDefaultCapabilities = names;
  }
  config.injectorNamespace = values["injector-namespace"] ?? env.POD_NAMESPACE ?? config.injectorNamespace;
  config.injectorServiceAccount = values["injector-service-account"] ?? env.POD_SERVICE_ACCOUNT ?? config.injectorServiceAccount;
  const otel = otelEnvFrom(env);
  config.otelEnv = otel.sidecar;
  config.otelWithheld = otel.withheld;
  setSidecarResources(config, values);
  config.workload = workloadSettings(values);
  setClusterDns(config, values);
  return config;
}

/** Resource attributes every sidecar gets from the injector's flags (OTel k8s and cloud semantic conventions). */
const WORKLOAD_FLAGS = {
  "cluster-name": "k8s.cluster.name",
  "cloud-provider": "cloud.provider",
  "cloud-platform": "cloud.platform",
  "cloud-region": "cloud.region",
  "cloud-account-id": "cloud.account.id",
} as const;

/** A label key as Kubernetes allows it: an optional DNS prefix and `/`, then a name of up to 63 characters. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function workloadSettings(values: InjectorOptionValues): InjectorConfig["workload"] {
  const resource: Record<string, string> = {};
  for (const [flag, key] of Object.entries(WORKLOAD_FLAGS)) {
    const value = values[flag as keyof typeof WORKLOAD_FLAGS]?.trim();
    if (value !== undefined && value !== "") resource[key] = value;
  }
  const podLabels = (values["pod-labels"] ?? "").split(",").map((k) => k.trim()).filter((k) => k !== "");
  const bad = podLabels.find((k) => !LABEL_KEY.test(k));
  if (bad !== undefined) throw new UsageError(`--pod-labels: '${bad}' is not a label key (e.g. app,app.kubernetes.io/name)`);
  return { resource, podLabels };
}

/** A Kubernetes CPU quantity ("500m", "1", "0.5") in millicores; undefined when unreadable. */
export function cpuMillis(quantity: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity.trim());
  return match === null ? undefined : Number(match[1]) * (match[2] === "m" ? 1 : 1000);
}

const sidecarQuantities = {
  memory: { parse: memoryBytes, what: "a memory quantity", example: "256Mi", minLimit: 64 * 2 ** 20, minText: "64Mi" },
  cpu: { parse: cpuMillis, what: "a CPU quantity", example: "500m", minLimit: 1, minText: "1m" },
} as const;

/**
 * --sidecar-memory / --sidecar-cpu set the limit, and lower the request when it would be
 * above it (the request stays small otherwise: Fargate sizes pods by requests);
 * --sidecar-memory-request / --sidecar-cpu-request set the request, never above the limit.
 */
function setSidecarResources(config: InjectorConfig, values: InjectorOptionValues): void {
  const { requests, limits } = config.resources;
  for (const [resource, q] of Object.entries(sidecarQuantities)) {
    const limit = values[`sidecar-${resource}` as "sidecar-memory" | "sidecar-cpu"];
    if (limit !== undefined) {
      const amount = q.parse(limit);
      if (amount === undefined || amount < q.minLimit) throw new UsageError(`--sidecar-${resource} must be ${q.what} of at least ${q.minText} (e.g. ${q.example}), not '${limit}'`);
      limits[resource] = limit;
      if (amount < q.parse(requests[resource]!)!) requests[resource] = limit;
    }
    const request = values[`sidecar-${resource}-request` as "sidecar-memory-request" | "sidecar-cpu-request"];
    if (request !== undefined) {
      const amount = q.parse(request);
      if (amount === undefined) throw new UsageError(`--sidecar-${resource}-request must be ${q.what}, not '${request}'`);
      if (amount > q.parse(limits[resource]!)!) throw new UsageError(`--sidecar-${resource}-request ${request} is above the ${resource} limit ${limits[resource]!}`);
      requests[resource] = request;
    }
  }
}

/** --cluster-dns and --cluster-domain: where pods' resolvers go after the sidecar's DNS forwarder. */
function setClusterDns(config: InjectorConfig, values: InjectorOptionValues): void {
  const clusterDns = values["cluster-dns"];
  if (clusterDns !== undefined) {
    const addresses = clusterDns.split(",").map((a) => a.trim()).filter((a) => a !== "");
    const bad = addresses.find((a) => isIP(a) === 0);
    if (addresses.length === 0 || bad !== undefined) throw new UsageError(`--cluster-dns must be IP addresses (e.g. 10.96.0.10), not '${bad ?? clusterDns}'`);
    config.clusterDnsServers = addresses;
  }
  const domain = values["cluster-domain"];
  if (domain !== undefined) {
    const trimmed = domain.replace(/\.$/, "");
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(trimmed)) throw new UsageError(`--cluster-domain must be a DNS domain (e.g. cluster.local), not '${domain}'`);
    config.clusterDomain = trimmed;
  }
}

/** `k=v,k2=v2` → labels; an entry without `=` or with an empty key is an error. */
export function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const entry of text.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const at = entry.indexOf("=");
    if (at <= 0) throw new UsageError(`--namespace-labels: '${entry}' is not key=value`);
    labels[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return labels;
}

/** The policies of --policy FILE, or none (every pod then gets the built-in default). */
export function policiesFrom(file: string | undefined): RuntimePolicy[] {
  return file === undefined ? [] : loadPolicyFile(file);
}
