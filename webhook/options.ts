/** Command-line options shared by `microenforcer inject` and `microenforcer webhook`. */
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
  const memory = values["sidecar-memory"];
  if (memory !== undefined) {
    const bytes = memoryBytes(memory);
    if (bytes === undefined || bytes < 64 * 2 ** 20) throw new UsageError(`--sidecar-memory must be a memory quantity of at least 64Mi (e.g. 256Mi), not '${memory}'`);
    // The limit; the request stays small (Fargate sizes pods by requests) unless above it.
    config.resources.limits.memory = memory;
    if (bytes < memoryBytes(config.resources.requests.memory!)!) config.resources.requests.memory = memory;
  }
  return config;
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
