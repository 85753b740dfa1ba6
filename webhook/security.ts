/**
 * The sidecar's securityContext. The kernel lets one process read another's
 * /proc/PID/{exe,fd,environ} (ptrace_may_access in PTRACE_MODE_READ_FSCREDS) only when both
 * run with the same UIDs and GIDs *and* the reader's effective capabilities include every
 * capability the target holds (cap_ptrace_access_check), or when the reader has
 * CAP_SYS_PTRACE. So the sidecar runs as the app's UID and GID and, when that is root, keeps
 * the capabilities the app's root processes hold: the runtime's default set, less what every
 * root container drops, plus what they add. Nothing rendered here is something the
 * namespace's Pod Security level would reject; what had to give way is a warning that says
 * what the sidecar cannot read, and whose.
 */
import type { PodSecurityLevel } from "./config.ts";
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";
import { PSA_ENFORCE_LABEL } from "./keys.ts";

/** A non-root UID for when the app's is unknown and root is not allowed (the image's own user). */
export const FALLBACK_UID = 65532;

/**
 * What containerd (and so EKS, Fargate and Docker) gives a container that declares no
 * capabilities. CRI-O's default is a subset (no MKNOD, NET_RAW, SETFCAP, SYS_CHROOT,
 * AUDIT_WRITE); `--runtime-default-capabilities` sets another list.
 */
export const RUNTIME_DEFAULT_CAPABILITIES: readonly string[] = [
  "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
];

/** What Pod Security baseline lets a container add (containerd's default without NET_RAW); restricted allows NET_BIND_SERVICE only. */
const ADDABLE: Readonly<Record<PodSecurityLevel, ReadonlySet<string> | undefined>> = {
  privileged: undefined,
  baseline: new Set(["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"]),
  restricted: new Set(["NET_BIND_SERVICE"]),
};

export interface SidecarSecurity {
  securityContext: JsonObject;
  /** It may listen below 1024 without the unprivileged-port sysctl: root holding NET_BIND_SERVICE (a non-root process loses its capabilities at exec: the CRI sets no ambient ones). */
  bindsLowPorts: boolean;
  warnings: string[];
}

const LEVELS: readonly PodSecurityLevel[] = ["privileged", "baseline", "restricted"];

/** The namespace's enforced level; an unlabelled namespace is privileged (the Kubernetes default). */
export function podSecurityLevel(namespaceLabels: Record<string, string> | undefined): PodSecurityLevel {
  const level = namespaceLabels?.[PSA_ENFORCE_LABEL];
  return LEVELS.find((l) => l === level) ?? "privileged";
}

function integerAt(value: unknown, key: string): number | undefined {
  const v = isObject(value) ? value[key] : undefined;
  return typeof v === "number" && Number.isInteger(v) ? v : undefined;
}

/** `cap_net_raw`, `CAP_NET_RAW`, `net_raw` → NET_RAW. */
function capabilityName(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value.toUpperCase().replace(/^CAP_/, "") : undefined;
}

const sorted = (names: Iterable<string>) => [...new Set(names)].sort();

/** One app container as the kernel will see its processes. */
interface AppContainer {
  name: string;
  /** Declared (container, else pod); undefined: its image's user. */
  uid: number | undefined;
  gid: number | undefined;
  /** Runs as root: declares UID 0, or no UID where nothing requires non-root (an image's user is most often root). */
  root: boolean;
  privileged: boolean;
  /** What its root processes hold: the runtime default less its drops, plus its adds. */
  capabilities: string[];
}

/** Regular containers first (the first is the app's main one), then init containers (native sidecars run beside them). */
function appContainers(spec: JsonObject, nonRootRequired: boolean, defaults: readonly string[]): AppContainer[] {
  const pod = objectAt(spec, "securityContext");
  const containers = [...arrayAt(spec, "containers"), ...arrayAt(spec, "initContainers")];
  return containers.map((c, i) => {
    const context = objectAt(c, "securityContext");
    const uid = integerAt(context, "runAsUser") ?? integerAt(pod, "runAsUser");
    const nonRoot = nonRootRequired || (context?.runAsNonRoot ?? pod?.runAsNonRoot) === true;
    const declared = objectAt(context, "capabilities");
    const drop = new Set(arrayAt(declared, "drop").map(capabilityName));
    const add = arrayAt(declared, "add").map(capabilityName).filter((n): n is string => n !== undefined);
    return {
      name: stringAt(c, "name") ?? `#${i}`,
      uid,
      gid: integerAt(context, "runAsGroup") ?? integerAt(pod, "runAsGroup"),
      root: uid === 0 || (uid === undefined && !nonRoot),
      privileged: context?.privileged === true,
      capabilities: sorted([...(drop.has("ALL") ? [] : defaults.filter((n) => !drop.has(n))), ...add]),
    };
  });
}

function mustBeNonRoot(spec: JsonObject, level: PodSecurityLevel): boolean {
  return level === "restricted" || objectAt(spec, "securityContext")?.runAsNonRoot === true;
}

const listed = (containers: readonly AppContainer[]) => `container${containers.length > 1 ? "s" : ""} ${containers.map((c) => c.name).join(", ")}`;

export function sidecarSecurity(spec: JsonObject, level: PodSecurityLevel, allowPtrace: boolean, defaults: readonly string[] = RUNTIME_DEFAULT_CAPABILITIES): SidecarSecurity {
  const warnings: string[] = [];
  const base: JsonObject = {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    seccompProfile: { type: "RuntimeDefault" },
  };
  const nonRootRequired = mustBeNonRoot(spec, level);

  if (allowPtrace) {
    if (level === "privileged" && !nonRootRequired) {
      // Added capabilities are only effective for root; DAC_READ_SEARCH opens other UIDs' environ.
      return { securityContext: { ...base, runAsUser: 0, capabilities: { drop: ["ALL"], add: ["SYS_PTRACE", "DAC_READ_SEARCH"] } }, bindsLowPorts: false, warnings };
    }
    const why = level === "privileged" ? "the pod requires runAsNonRoot" : `the namespace enforces Pod Security level ${level}`;
    warnings.push(`SYS_PTRACE not granted (${why}); the sidecar sees only processes of its own UID in full`);
  }

  const apps = appContainers(spec, nonRootRequired, defaults);
  const main = apps[0];
  let uid = main?.uid;
  let gid = main?.gid;
  const fellBack = uid === undefined && nonRootRequired;
  if (uid === undefined) {
    if (fellBack) {
      uid = FALLBACK_UID;
      warnings.push(`no runAsUser declared; the sidecar runs as UID ${uid} and records other UIDs' processes without their executable (set runAsUser on the pod)`);
    } else {
      // No declared UID means the image's default, most often root (nginx, most official images): match it.
      uid = 0;
    }
  }
  // Root's group is 0 in every image; another UID's group comes from the app image's /etc/passwd.
  if (uid === 0) gid ??= 0;
  else if (gid === undefined && main?.uid === uid) {
    warnings.push(`container ${main.name} declares runAsUser ${uid} but no runAsGroup: its GID comes from its image, and the sidecar reads its processes only with the same GID (set runAsGroup)`);
  }
  const context: JsonObject = { ...base, runAsUser: uid };
  if (gid !== undefined) context.runAsGroup = gid;
  if (uid !== 0) context.runAsNonRoot = true;

  const kept = uid === 0 ? rootCapabilities(apps, level, defaults) : [];
  const capabilities = capabilitiesField(kept, defaults);
  if (capabilities !== undefined) context.capabilities = capabilities;
  // Containers of an unknown non-root user are said above already.
  const blind = unreadable(fellBack ? apps.filter((a) => a.uid !== undefined) : apps, uid, kept, level);
  if (blind.length > 0) {
    warnings.push(`the sidecar runs as UID ${uid}${main?.uid === uid || uid === 0 ? ` (container ${main?.name ?? "?"})` : ""} and cannot read the executable, environment or sockets of processes of ${blind.join("; ")}: it records their command lines, users and containers`);
  }
  return { securityContext: context, bindsLowPorts: uid === 0 && kept.includes("NET_BIND_SERVICE"), warnings };
}

/** The capabilities a root sidecar keeps: what the app's root containers hold, as far as the level allows. */
function rootCapabilities(apps: readonly AppContainer[], level: PodSecurityLevel, defaults: readonly string[]): string[] {
  const held = sorted(apps.filter((a) => a.root && !a.privileged).flatMap((a) => a.capabilities));
  const addable = ADDABLE[level];
  // A default capability is kept by not dropping it, which every level but restricted allows.
  return held.filter((n) => (defaults.includes(n) && level !== "restricted") || addable === undefined || addable.has(n));
}

/**
 * The runtime default less what is not kept, plus what is kept beyond it: no `add` where the
 * default suffices (Pod Security baseline and Fargate restrict adds, not defaults kept), and
 * no field at all when the sidecar keeps exactly the default, like the app.
 */
function capabilitiesField(kept: readonly string[], defaults: readonly string[]): JsonObject | undefined {
  if (kept.length === 0) return { drop: ["ALL"] };
  const field: JsonObject = {};
  const drop = defaults.filter((n) => !kept.includes(n));
  const add = kept.filter((n) => !defaults.includes(n));
  if (drop.length > 0) field.drop = drop;
  if (add.length > 0) field.add = add;
  return drop.length + add.length > 0 ? field : undefined;
}

/** Who the sidecar cannot read in full, one phrase per UID or cause. */
function unreadable(apps: readonly AppContainer[], uid: number, kept: readonly string[], level: PodSecurityLevel): string[] {
  const phrases: string[] = [];
  const byUid = new Map<string, AppContainer[]>();
  for (const app of apps) {
    const runsAs = app.root ? 0 : app.uid;
    if (runsAs === uid) continue;
    const key = runsAs === undefined ? "their image's user" : `UID ${runsAs}`;
    byUid.set(key, [...(byUid.get(key) ?? []), app]);
  }
  for (const [who, containers] of byUid) phrases.push(`${who} (${listed(containers)})`);
  if (uid !== 0) return phrases;
  const privileged = apps.filter((a) => a.root && a.privileged);
  if (privileged.length > 0) phrases.push(`root in privileged ${listed(privileged)} (the sidecar is never privileged)`);
  for (const app of apps.filter((a) => a.root && !a.privileged)) {
    const missing = app.capabilities.filter((n) => !kept.includes(n));
    if (missing.length > 0) phrases.push(`root in container ${app.name}, which holds ${missing.join(", ")} (beyond what Pod Security level ${level} lets the sidecar keep; drop ${missing.length > 1 ? "them" : "it"} from the container to make it readable)`);
  }
  return phrases;
}
