/**
 * Inject or skip, with one enumerated reason (the label of the skips metric and the text of
 * the admission warning). Pure: everything it needs about the cluster comes in as arguments.
 */
import { arrayAt, isObject, objectAt, stringAt, stringMapAt, type JsonObject } from "./json.ts";
import {
  INJECT_KEY,
  INJECTOR_POD_LABEL,
  INJECTOR_POD_LABEL_VALUE,
  NAMESPACE_INJECTION_LABEL,
  NATIVE_SIDECAR_ANNOTATION,
  POLICY_VOLUME,
  SIDECAR_NAME,
  SPOOL_VOLUME,
  STATUS_ANNOTATION,
  SYSTEM_NAMESPACES,
} from "./keys.ts";

/** Why a pod is injected. */
export const INJECT_REASONS = {
  "namespace-enabled": `the namespace has ${NAMESPACE_INJECTION_LABEL}=enabled`,
  "pod-opted-in": `the pod sets ${INJECT_KEY}: "true"`,
  "in-scope": "no cluster access: every pod that reaches the injector is in scope",
} as const;

/** Why a pod is not injected (Linkerd-style skip reasons). */
export const SKIP_REASONS = {
  "not-a-pod": "the object is not a Pod",
  "not-create": "only pod creation is mutated",
  "invalid-pod": "the object has no spec.containers list",
  "system-namespace": "pods in system namespaces are never injected",
  "injector-pod": "the injector's own pods are never injected",
  "already-injected": `the pod already has the ${STATUS_ANNOTATION} annotation`,
  "pod-opted-out": `the pod sets ${INJECT_KEY}: "false"`,
  "namespace-not-enabled": `the namespace lacks ${NAMESPACE_INJECTION_LABEL}=enabled`,
  "host-pid": "hostPID pods share the node's PID namespace; the sidecar would watch the whole node",
  "windows-pod": "the sidecar needs Linux /proc; Windows pods are not injected",
  "name-conflict": "the pod already uses a name the injector adds",
  "runs-to-completion":
    "without native sidecars (Kubernetes < 1.29) a sidecar container keeps a run-to-completion pod (restartPolicy Never/OnFailure) from ever completing",
} as const;

export type InjectReason = keyof typeof INJECT_REASONS;
export type SkipReason = keyof typeof SKIP_REASONS;

/** Skips the pod's owner did not ask for: the webhook answers them with a warning. */
export const UNEXPECTED_SKIPS: readonly SkipReason[] = ["invalid-pod", "host-pid", "windows-pod", "name-conflict", "runs-to-completion"];

export type Decision =
  | { inject: true; reason: InjectReason; native: boolean; warnings: string[] }
  | { inject: false; reason: SkipReason; detail: string; warnings: string[] };

export interface DecideInput {
  pod: JsonObject;
  /** The request's namespace (pods from controllers carry none in metadata yet). */
  namespace: string | undefined;
  /** undefined: no cluster access, so the apiserver's namespaceSelector already chose the pod. */
  namespaceLabels: Record<string, string> | undefined;
  injectorNamespace: string;
  /** The cluster runs native sidecars; the pod's own annotation may override. */
  nativeSidecars: boolean;
}

function skip(reason: SkipReason, warnings: string[], detail: string = SKIP_REASONS[reason]): Decision {
  return { inject: false, reason, detail, warnings };
}

/** A "true"/"false" switch on the pod; anything else is ignored with a warning. */
function podSwitch(key: string, value: string | undefined, warnings: string[], otherwise: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "true" || value === "false") return value === "true";
  warnings.push(`${key}: ${JSON.stringify(value)} is neither "true" nor "false"; ignored, ${otherwise}`);
  return undefined;
}

function isWindows(spec: JsonObject): boolean {
  return stringAt(objectAt(spec, "os"), "name") === "windows" || stringMapAt(spec, "nodeSelector")["kubernetes.io/os"] === "windows";
}

function names(spec: JsonObject, key: string): string[] {
  return arrayAt(spec, key).flatMap((item) => stringAt(item, "name") ?? []);
}

/** Names we would add that the pod already uses for something of its own. */
function conflicts(spec: JsonObject): string[] {
  const found: string[] = [];
  if ([...names(spec, "containers"), ...names(spec, "initContainers")].includes(SIDECAR_NAME)) found.push(`container ${SIDECAR_NAME}`);
  for (const volume of [POLICY_VOLUME, SPOOL_VOLUME]) if (names(spec, "volumes").includes(volume)) found.push(`volume ${volume}`);
  return found;
}

export function decide(input: DecideInput): Decision {
  const warnings: string[] = [];
  const metadata = objectAt(input.pod, "metadata");
  const spec = objectAt(input.pod, "spec");
  if (spec === undefined || !Array.isArray(spec.containers) || !spec.containers.every(isObject)) return skip("invalid-pod", warnings);
  const namespace = input.namespace ?? stringAt(metadata, "namespace");
  if (namespace !== undefined && SYSTEM_NAMESPACES.includes(namespace)) return skip("system-namespace", warnings, `${namespace} is a system namespace`);
  if (namespace !== undefined && namespace === input.injectorNamespace) return skip("injector-pod", warnings, `${namespace} is the injector's namespace`);
  if (stringMapAt(metadata, "labels")[INJECTOR_POD_LABEL] === INJECTOR_POD_LABEL_VALUE) return skip("injector-pod", warnings);
  if (stringMapAt(metadata, "annotations")[STATUS_ANNOTATION] !== undefined) return skip("already-injected", warnings);

  // The pod's label wins over its annotation.
  const injectValue = stringMapAt(metadata, "labels")[INJECT_KEY] ?? stringMapAt(metadata, "annotations")[INJECT_KEY];
  const override = podSwitch(INJECT_KEY, injectValue, warnings, "the namespace decides");
  let reason: InjectReason;
  if (override === false) return skip("pod-opted-out", warnings);
  if (override === true) reason = "pod-opted-in";
  else if (input.namespaceLabels === undefined) reason = "in-scope";
  else if (input.namespaceLabels[NAMESPACE_INJECTION_LABEL] === "enabled") reason = "namespace-enabled";
  else return skip("namespace-not-enabled", warnings);

  if (spec.hostPID === true) return skip("host-pid", warnings);
  if (isWindows(spec)) return skip("windows-pod", warnings);
  const taken = conflicts(spec);
  if (taken.length > 0) {
    return skip("name-conflict", warnings, `the pod already has ${taken.join(" and ")}`);
  }
  const nativeValue = stringMapAt(metadata, "annotations")[NATIVE_SIDECAR_ANNOTATION];
  const native = podSwitch(NATIVE_SIDECAR_ANNOTATION, nativeValue, warnings, "the cluster default applies") ?? input.nativeSidecars;
  const restartPolicy = stringAt(spec, "restartPolicy");
  if (!native && (restartPolicy === "Never" || restartPolicy === "OnFailure")) return skip("runs-to-completion", warnings);
  return { inject: true, reason, native, warnings };
}

