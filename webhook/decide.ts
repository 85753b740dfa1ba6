/**
 * Inject, skip or refuse, with one enumerated reason (the label of the metrics and the text
 * of the admission warning or refusal). Pure: everything it needs about the cluster and the
 * pod's own copy of our names comes in as arguments.
 *
 * Who decides: the namespace label `microenforcer.dev/injection` (admins) says `enabled`
 * (pods may opt out) or `required` (no pod-level opt-out or override; whatever keeps the
 * pod from being injected refuses it). Pod labels and annotations never decide alone in a
 * `required` namespace: each one ignored there is a warning and a metric.
 */
import { isObject, objectAt, stringAt, stringMapAt, type JsonObject } from "./json.ts";
import { INJECT_KEY, NAMESPACE_INJECTION_LABEL, NATIVE_SIDECAR_ANNOTATION, SYSTEM_NAMESPACES } from "./keys.ts";
import type { Presence } from "./genuine.ts";

export type NamespaceMode = "required" | "enabled" | "off";

/** Why a pod is injected. */
export const INJECT_REASONS = {
  "namespace-required": `the namespace has ${NAMESPACE_INJECTION_LABEL}=required`,
  "namespace-enabled": `the namespace has ${NAMESPACE_INJECTION_LABEL}=enabled`,
  "pod-opted-in": `the pod sets ${INJECT_KEY}: "true"`,
  "in-scope": "no cluster access: every pod that reaches the injector is in scope",
} as const;

/** Why a pod is not injected (Linkerd-style skip reasons); in a `required` namespace most refuse the pod. */
export const SKIP_REASONS = {
  "not-a-pod": "the object is not a Pod",
  "not-create": "only pod creation is mutated",
  "invalid-pod": "the object has no spec.containers list",
  "system-namespace": "pods in system namespaces are never injected",
  "injector-pod": "the injector's own pods (its namespace and ServiceAccount) are never injected",
  "injector-namespace": "pods in the injector's namespace are never injected (only admins create pods there)",
  "already-injected": "the pod already runs the genuine sidecar",
  "pod-opted-out": `the pod sets ${INJECT_KEY}: "false"`,
  "namespace-not-enabled": `the namespace lacks ${NAMESPACE_INJECTION_LABEL}=enabled or required`,
  "host-pid": "hostPID pods share the node's PID namespace; the sidecar would watch the whole node",
  "windows-pod": "the sidecar needs Linux /proc; Windows pods are not injected",
  "name-conflict": "the pod already uses a name the injector adds",
  "runs-to-completion": "a classic sidecar container would keep a run-to-completion pod (restartPolicy Never/OnFailure) from ever completing",
} as const;

export type InjectReason = keyof typeof INJECT_REASONS;
export type SkipReason = keyof typeof SKIP_REASONS;

/** Skips the pod's owner did not ask for: the webhook answers them with a warning. */
export const UNEXPECTED_SKIPS: readonly SkipReason[] = ["invalid-pod", "host-pid", "windows-pod", "name-conflict", "runs-to-completion"];

/** Pod keys a `required` namespace overrules (label of the ignored-overrides metric). */
export type OverruledKey = typeof INJECT_KEY | typeof NATIVE_SIDECAR_ANNOTATION;

export type Decision =
  | { action: "inject"; reason: InjectReason; native: boolean; warnings: string[]; overruled: OverruledKey[] }
  | { action: "skip"; reason: SkipReason; detail: string; warnings: string[] }
  /** Only in `required` namespaces: the pod must not run without the sidecar. */
  | { action: "refuse"; reason: SkipReason; detail: string; warnings: string[] };

export interface DecideInput {
  pod: JsonObject;
  /** The request's namespace (pods from controllers carry none in metadata yet). */
  namespace: string | undefined;
  /** undefined: no cluster access, so the apiserver's namespaceSelector already chose the pod. */
  namespaceLabels: Record<string, string> | undefined;
  injectorNamespace: string;
  injectorServiceAccount: string;
  /** The cluster runs native sidecars; the pod's own annotation may override outside `required` namespaces. */
  nativeSidecars: boolean;
  /** What the pod already has under our names (genuine.ts). */
  ours: Presence;
}

/** The namespace's injection mode from its labels; undefined without cluster access. */
export function namespaceMode(labels: Record<string, string> | undefined): NamespaceMode | undefined {
  if (labels === undefined) return undefined;
  const value = labels[NAMESPACE_INJECTION_LABEL];
  return value === "required" || value === "enabled" ? value : "off";
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

const REQUIRED = `the namespace requires the MicroEnforcer (${NAMESPACE_INJECTION_LABEL}=required)`;

export function decide(input: DecideInput): Decision {
  const warnings: string[] = [];
  const metadata = objectAt(input.pod, "metadata");
  const spec = objectAt(input.pod, "spec");
  const labels = stringMapAt(metadata, "labels");
  const annotations = stringMapAt(metadata, "annotations");
  const namespace = input.namespace ?? stringAt(metadata, "namespace");
  const mode = namespaceMode(input.namespaceLabels);
  const required = mode === "required";
  const skip = (reason: SkipReason, detail: string = SKIP_REASONS[reason]): Decision => ({ action: "skip", reason, detail, warnings });
  // What would be a skip elsewhere refuses the pod in a `required` namespace.
  const cannot = (reason: SkipReason, detail: string = SKIP_REASONS[reason]): Decision =>
    required ? { action: "refuse", reason, detail: `${REQUIRED}, and ${detail}`, warnings } : skip(reason, detail);

  if (namespace !== undefined && SYSTEM_NAMESPACES.includes(namespace)) return skip("system-namespace", `${namespace} is a system namespace`);
  if (namespace !== undefined && namespace === input.injectorNamespace) {
    return stringAt(spec, "serviceAccountName") === input.injectorServiceAccount ? skip("injector-pod") : skip("injector-namespace");
  }
  if (spec === undefined || !Array.isArray(spec.containers) || !spec.containers.every(isObject)) return cannot("invalid-pod");
  if (input.ours.sidecar === "genuine") return skip("already-injected");

  const overruled: OverruledKey[] = [];
  // The pod's label wins over its annotation.
  const injectValue = labels[INJECT_KEY] ?? annotations[INJECT_KEY];
  let reason: InjectReason;
  if (required) {
    reason = "namespace-required";
    if (injectValue === "false") {
      overruled.push(INJECT_KEY);
      warnings.push(`${INJECT_KEY}: "false" ignored: ${REQUIRED}`);
    }
  } else {
    const override = podSwitch(INJECT_KEY, injectValue, warnings, "the namespace decides");
    if (override === false) return skip("pod-opted-out");
    if (mode === undefined) reason = override === true ? "pod-opted-in" : "in-scope";
    else if (mode === "enabled") reason = "namespace-enabled";
    else if (override === true) reason = "pod-opted-in";
    else return skip("namespace-not-enabled");
  }

  if (spec.hostPID === true) return cannot("host-pid");
  if (isWindows(spec)) return cannot("windows-pod");
  if (input.ours.sidecar === "forged") return cannot("name-conflict", input.ours.detail);

  const nativeValue = annotations[NATIVE_SIDECAR_ANNOTATION];
  let native = input.nativeSidecars;
  if (required) {
    if (nativeValue !== undefined && nativeValue !== String(input.nativeSidecars)) {
      overruled.push(NATIVE_SIDECAR_ANNOTATION);
      warnings.push(`${NATIVE_SIDECAR_ANNOTATION}: ${JSON.stringify(nativeValue)} ignored: ${REQUIRED}; the cluster's sidecar form is used`);
    }
  } else {
    native = podSwitch(NATIVE_SIDECAR_ANNOTATION, nativeValue, warnings, "the cluster default applies") ?? native;
  }
  const restartPolicy = stringAt(spec, "restartPolicy");
  if (!native && (restartPolicy === "Never" || restartPolicy === "OnFailure")) {
    const why = input.nativeSidecars
      ? `the pod asks for a classic sidecar (${NATIVE_SIDECAR_ANNOTATION}: "false")`
      : "this cluster has no native sidecars (Kubernetes < 1.29)";
    return cannot("runs-to-completion", `${why}, and ${SKIP_REASONS["runs-to-completion"]}`);
  }
  return { action: "inject", reason, native, warnings, overruled };
}
