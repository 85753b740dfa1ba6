/** What an injector is configured with: the same shape for the webhook and the `inject` CLI. */
export type PodSecurityLevel = "privileged" | "baseline" | "restricted";

export interface InjectorConfig {
  image: string;
  imagePullPolicy: "Always" | "IfNotPresent" | "Never";
  /** OTEL_* variables handed to every sidecar (endpoint, protocol, headers, resource attributes). */
  otelEnv: Record<string, string>;
  /** The cluster runs native sidecars (Kubernetes ≥ 1.29); a pod annotation may override. */
  nativeSidecars: boolean;
  /** The admin allows SYS_PTRACE (root sidecar) where the namespace's Pod Security level permits it. */
  allowPtrace: boolean;
  /** Pods in this namespace are never injected; those running as injectorServiceAccount there are the injector's own. */
  injectorNamespace: string;
  injectorServiceAccount: string;
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}

export const DEFAULT_IMAGE = "microenforcer:0.1.0";

export function defaultInjectorConfig(): InjectorConfig {
  return {
    image: DEFAULT_IMAGE,
    imagePullPolicy: "IfNotPresent",
    otelEnv: {},
    nativeSidecars: true,
    allowPtrace: false,
    injectorNamespace: "microenforcer-system",
    injectorServiceAccount: "microenforcer-injector",
    // Fargate sizes a pod by its requests: keep the sidecar's share small, bound its memory.
    resources: { requests: { cpu: "20m", memory: "64Mi" }, limits: { cpu: "500m", memory: "160Mi" } },
  };
}

/** The OTEL_* part of an environment, sorted so the rendered pod does not depend on env order. */
export function otelEnvFrom(env: NodeJS.ProcessEnv): Record<string, string> {
  const entries = Object.entries(env).filter((e): e is [string, string] => e[0].startsWith("OTEL_") && e[1] !== undefined && e[1] !== "");
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
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
