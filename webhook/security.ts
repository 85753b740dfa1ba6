/**
 * The sidecar's securityContext. /proc/PID/{exe,environ} of another process need the same
 * UID and GID (or CAP_SYS_PTRACE with DAC read, which only a root process can use), so the
 * sidecar runs as the app's UID when the pod declares one. Nothing rendered here is
 * something the namespace's Pod Security level would reject; what had to give way is a warning.
 */
import type { PodSecurityLevel } from "./config.ts";
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";
import { PSA_ENFORCE_LABEL } from "./keys.ts";

/** A non-root UID for when the app's is unknown and root is not allowed (the image's own user). */
export const FALLBACK_UID = 65532;

export interface SidecarSecurity {
  securityContext: JsonObject;
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

interface Identity {
  uid: number | undefined;
  gid: number | undefined;
  warning?: string;
}

/** The UID (and GID) the app runs as, from the pod's or its containers' securityContext. */
function appIdentity(spec: JsonObject): Identity {
  const podContext = objectAt(spec, "securityContext");
  const containers = arrayAt(spec, "containers");
  const contextOf = (c: unknown) => objectAt(c, "securityContext");
  const uids = containers.map((c) => integerAt(contextOf(c), "runAsUser") ?? integerAt(podContext, "runAsUser"));
  const first = containers.findIndex((_, i) => uids[i] !== undefined);
  if (first === -1) return { uid: undefined, gid: undefined };
  const uid = uids[first];
  const gid = integerAt(contextOf(containers[first]), "runAsGroup") ?? integerAt(podContext, "runAsGroup");
  if (uids.every((u) => u === uid)) return { uid, gid };
  const name = stringAt(containers[first], "name") ?? `#${first}`;
  return {
    uid,
    gid,
    warning: `containers run as different UIDs; the sidecar runs as UID ${uid} (container ${name}) and records other UIDs' processes without their executable`,
  };
}

function mustBeNonRoot(spec: JsonObject, level: PodSecurityLevel): boolean {
  return level === "restricted" || objectAt(spec, "securityContext")?.runAsNonRoot === true;
}

export function sidecarSecurity(spec: JsonObject, level: PodSecurityLevel, allowPtrace: boolean): SidecarSecurity {
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
      return { securityContext: { ...base, runAsUser: 0, capabilities: { drop: ["ALL"], add: ["SYS_PTRACE", "DAC_READ_SEARCH"] } }, warnings };
    }
    const why = level === "privileged" ? "the pod requires runAsNonRoot" : `the namespace enforces Pod Security level ${level}`;
    warnings.push(`SYS_PTRACE not granted (${why}); the sidecar sees only processes of its own UID in full`);
  }

  const identity = appIdentity(spec);
  if (identity.warning !== undefined) warnings.push(identity.warning);
  let uid = identity.uid;
  if (uid === undefined) {
    if (nonRootRequired) {
      uid = FALLBACK_UID;
      warnings.push(`no runAsUser declared; the sidecar runs as UID ${uid} and records other UIDs' processes without their executable (set runAsUser on the pod)`);
    } else {
      // No declared UID usually means the image's default, most often root: match it, with no capabilities.
      uid = 0;
    }
  }
  const context: JsonObject = { ...base, runAsUser: uid };
  if (identity.gid !== undefined) context.runAsGroup = identity.gid;
  if (uid !== 0) context.runAsNonRoot = true;
  context.capabilities = { drop: ["ALL"] };
  return { securityContext: context, warnings };
}
