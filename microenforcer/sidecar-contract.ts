/**
 * What the injector (webhook/) and the sidecar (`microenforcer watch`) agree on: the
 * variables the injector sets, the paths it mounts, and how the exporter is chosen. The
 * injector imports this module; nothing here imports either side, so every layer of the
 * sidecar may read it (DESIGN.md, "Contracts").
 */
import { isIPv6 } from "node:net";

/** Set on every app container to its name; the sensor reads it from /proc/PID/environ. */
export const CONTAINER_ENV = "MICROENFORCER_CONTAINER";

/**
 * Complete mode: where the preload library lives in every container (an emptyDir the
 * injector's init container fills, mounted read-only in app containers), the socket it
 * reports to and the variable naming that socket (the library reads it; so does the
 * sidecar, as `watch --exec-socket`, and from /proc/PID/environ to tell why a report is missing).
 */
export const PRELOAD_MOUNT_PATH = "/var/lib/microenforcer/preload";
export const PRELOAD_LIBRARY_FILE = "libmicroenforcer-exec.so";
export const EXEC_SOCKET_FILE = "exec.sock";
export const EXEC_SOCKET_ENV = "MICROENFORCER_EXEC_SOCKET";

/** The sidecar's spool directory (its emptyDir); `watch --spool-dir` overrides it. */
export const SPOOL_DIR_ENV = "MICROENFORCER_SPOOL_DIR";
/** Bytes of records the spool may hold (default DEFAULT_SPOOL_MAX_BYTES, spool/spool.ts). */
export const SPOOL_MAX_BYTES_ENV = "MICROENFORCER_SPOOL_MAX_BYTES";
export const SPOOL_MOUNT_PATH = "/var/lib/microenforcer/spool";
/** The spool emptyDir's size limit; the spool's default cap stays below it. */
export const SPOOL_SIZE_LIMIT = "64Mi";

/** Where the injector mounts the policy document; `watch --policy` follows this file. */
export const POLICY_MOUNT_PATH = "/etc/microenforcer/policy";
export const POLICY_FILE = "policy.json";
/**
 * The injector's public key (base64 SPKI DER): when set, the sidecar accepts only policy
 * documents signed with it and bound to POLICY_BINDING_ENV (policies/signed-document.ts).
 */
export const POLICY_KEY_ENV = "MICROENFORCER_POLICY_KEY";
/** The pod's binding nonce, chosen by the injector at creation; a signed document must carry it. */
export const POLICY_BINDING_ENV = "MICROENFORCER_POLICY_BINDING";

/**
 * A native sidecar's startupProbe: the sidecar answers 200 on this port and path once its
 * sensor watches the pod's PID namespace (503 before), and the kubelet starts the app
 * containers only then. The injector sets the variable; without it nothing listens.
 */
export const STARTED_PORT_ENV = "MICROENFORCER_STARTED_PORT";
export const STARTED_PORT = 15477;
export const STARTED_PATH = "/started";

/** Downward-API variables the injector sets on the sidecar, in this order, and the resource keys they become. */
export const DOWNWARD_API: ReadonlyArray<{ env: string; fieldPath: string; resourceKey: string }> = [
  { env: "POD_NAME", fieldPath: "metadata.name", resourceKey: "k8s.pod.name" },
  { env: "POD_NAMESPACE", fieldPath: "metadata.namespace", resourceKey: "k8s.namespace.name" },
  { env: "POD_UID", fieldPath: "metadata.uid", resourceKey: "k8s.pod.uid" },
  { env: "NODE_NAME", fieldPath: "spec.nodeName", resourceKey: "k8s.node.name" },
];

/**
 * What the injector knows of the pod at admission and the sidecar cannot see, as one JSON
 * document in the sidecar's own environment (immutable once the pod exists; the pod's owner
 * cannot edit it): resource attributes (its workload, chosen pod labels, cluster, cloud) and
 * the image each container was admitted with.
 */
export const WORKLOAD_ENV = "MICROENFORCER_WORKLOAD";

export interface Workload {
  /** Resource attributes: k8s.deployment.name, k8s.pod.label.<key>, k8s.cluster.name, cloud.region, ... */
  resource: Record<string, string>;
  /** Container name → the image reference its spec names. */
  containerImages: Record<string, string>;
  /**
   * Container name → the argv of each of its exec probes (liveness, readiness, startup), which
   * the kubelet runs with PPID 0 like `kubectl exec`. The pod's owner wrote them: a process
   * matches only in that container, with exactly that argv, as a PPID-0 process.
   */
  probes?: Record<string, string[][]>;
}

const stringRecord = (value: unknown): value is Record<string, string> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === "string");

const probeRecord = (value: unknown): value is Record<string, string[][]> =>
  typeof value === "object" &&
  value !== null &&
  !Array.isArray(value) &&
  Object.values(value).every((argvs) => Array.isArray(argvs) && argvs.every((argv) => Array.isArray(argv) && argv.length > 0 && argv.every((a) => typeof a === "string")));

/** The variable's document; an absent one is empty, a malformed one an error to report (never half-read). */
export function parseWorkload(text: string | undefined): Workload {
  if (text === undefined || text === "") return { resource: {}, containerImages: {} };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${WORKLOAD_ENV} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const { resource, containerImages, probes } = (value ?? {}) as Partial<Workload>;
  if (!stringRecord(resource) || !stringRecord(containerImages)) throw new Error(`${WORKLOAD_ENV} must hold {"resource": {...}, "containerImages": {...}} of strings`);
  if (probes === undefined) return { resource, containerImages };
  if (!probeRecord(probes)) throw new Error(`${WORKLOAD_ENV}: "probes" must map container names to lists of argv (lists of strings)`);
  return { resource, containerImages, probes };
}

export const EXPORTERS = ["stdout", "otlp", "both"] as const;
export type ExporterChoice = (typeof EXPORTERS)[number];

/** OTLP too when the standard endpoint variables say where to; stdout always (Fargate's log router reads it). */
export function defaultExporter(env: Readonly<Record<string, string | undefined>>): "both" | "stdout" {
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT ? "both" : "stdout";
}

/**
 * The DNS forwarder: the injector points the pod's resolver at it (dnsConfig), and the
 * sidecar serves the resolver when it asks there. A resolver asks port 53 of each
 * nameserver (resolv.conf has no ports).
 */
export interface Endpoint {
  host: string;
  port: number;
}

/** `1.2.3.4`, `1.2.3.4:53`, `::1`, `[::1]:53` → host and port; undefined when malformed. */
export function parseEndpoint(text: string, defaultPort = 53): Endpoint | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  const [host, port] = bracketed ? [bracketed[1]!, bracketed[2]] : isIPv6(text) ? [text, undefined] : text.split(":");
  const portNumber = port === undefined ? defaultPort : Number(port);
  if (host === undefined || host === "" || !Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) return undefined;
  return { host, port: portNumber };
}

/** The nameserver that makes a resolver ask the forwarder on `listen`: undefined unless it listens on port 53 of the pod's loopback (or everywhere). */
export function forwarderNameserver(listen: Endpoint): string | undefined {
  if (listen.port !== 53) return undefined;
  if (listen.host === "0.0.0.0" || listen.host === "::") return "127.0.0.1";
  return listen.host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(listen.host) ? listen.host : undefined;
}

/**
 * Whether a resolver with these nameservers asks the forwarder listening on `listen`:
 * port 53 (resolv.conf has no ports), on its address or, for a wildcard, on loopback.
 */
export function resolverAsks(nameservers: readonly string[], listen: Endpoint): boolean {
  if (listen.port !== 53) return false;
  // A socket on :: takes IPv4 too (dual stack); one on 0.0.0.0 only IPv4.
  const wildcard = (ns: string) => (listen.host === "::" && ns === "::1") || ((listen.host === "::" || listen.host === "0.0.0.0") && ns.startsWith("127."));
  return nameservers.some((ns) => ns === listen.host || wildcard(ns));
}
