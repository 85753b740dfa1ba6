/**
 * One pod through the injector: decide, choose the policy, render. The admission handler
 * and `microenforcer inject` share this function.
 */
import jsonpatch, { type Operation } from "fast-json-patch";
import type { RuntimePolicy } from "../policies/schema.ts";
import { newBindingNonce } from "../policies/signed-document.ts";
import { attributeContainers } from "./attribution.ts";
import type { InjectorConfig } from "./config.ts";
import { decide, type Decision } from "./decide.ts";
import { inspectSidecar } from "./genuine.ts";
import { arrayAt, ensureObject, isObject, objectAt, stringAt, stringMapAt, type JsonObject } from "./json.ts";
import { CONTAINER_ENV } from "../microenforcer/sidecar-contract.ts";
import { POLICY_ANNOTATION, SIDECAR_NAME, STATUS_ANNOTATION } from "./keys.ts";
import type { ClusterDns } from "./pod-dns.ts";
import { policyRefresh } from "./policy-refresh.ts";
import { selectPolicy, type PolicyChoice } from "./policy-select.ts";
import { render, type Rendered } from "./render.ts";
import { podSecurityLevel } from "./security.ts";
import { setWorkloadEnv } from "./sidecar.ts";
import { parseStatus } from "./status.ts";
import { podWorkload } from "./workload.ts";

export interface InjectContext {
  config: InjectorConfig;
  /** The RuntimePolicies to choose from (the informer's, or those of --policy FILE). */
  policies: readonly RuntimePolicy[];
  /** undefined without cluster access: the pod is then taken as in scope. */
  namespaceLabels: Record<string, string> | undefined;
  /** The cluster's DNS service and domain (--cluster-dns, or the kube-dns Service); undefined when unknown. */
  clusterDns: ClusterDns | undefined;
}

export interface PodOutcome {
  decision: Decision;
  choice?: PolicyChoice;
  rendered?: Rendered;
  /** A pod that already runs the genuine sidecar: what keeps it current (attribution of containers added since, its policy). */
  touchUp?: { pod: JsonObject; patch: Operation[] };
  warnings: string[];
}

/**
 * An injected pod seen again (reinvocation after a later webhook added containers, or a
 * copy of an injected pod): every container attributed, the policy document the one the
 * pod should run and the sidecar's workload variable the pod's as it is now — never what
 * the pod brought along.
 */
function touchUp(input: JsonObject, namespace: string, context: InjectContext): { pod: JsonObject; patch: Operation[]; warnings: string[] } {
  const pod = structuredClone(input);
  ensureObject(pod, "metadata");
  jsonpatch.applyPatch(pod, policyRefresh(pod, namespace, context.policies, context.namespaceLabels ?? {}, context.config.signer), false, true);
  const spec = objectAt(pod, "spec") ?? {};
  const workload = podWorkload(pod, context.config);
  for (const sidecar of ["initContainers", "containers"].flatMap((key) => arrayAt(spec, key)).filter(isObject)) {
    if (stringAt(sidecar, "name") === SIDECAR_NAME) setWorkloadEnv(sidecar, workload);
  }
  const attributions = ["initContainers", "containers"].map((key) => attributeContainers(arrayAt(spec, key)));
  recordAttribution(pod, attributions.flatMap((a) => a.set));
  return { pod, patch: jsonpatch.compare(input, pod), warnings: attributions.flatMap((a) => a.warnings) };
}

/** Adds newly attributed containers to the status annotation, so removal takes their variable out too. */
function recordAttribution(pod: JsonObject, containers: string[]): void {
  const annotations = objectAt(objectAt(pod, "metadata"), "annotations");
  const text = stringAt(annotations, STATUS_ANNOTATION);
  if (containers.length === 0 || annotations === undefined || text === undefined) return;
  try {
    const status = parseStatus(text);
    status.env[CONTAINER_ENV] = [...new Set([...(status.env[CONTAINER_ENV] ?? []), ...containers])];
    annotations[STATUS_ANNOTATION] = JSON.stringify(status);
  } catch {
    // Not a status the injector wrote: it describes nothing worth keeping up to date.
  }
}

export function injectPod(pod: JsonObject, namespace: string | undefined, context: InjectContext): PodOutcome {
  const { config, namespaceLabels } = context;
  const level = podSecurityLevel(namespaceLabels);
  const ours = inspectSidecar(pod, { config, podSecurityLevel: level });
  const decision = decide({
    pod,
    namespace,
    namespaceLabels,
    injectorNamespace: config.injectorNamespace,
    injectorServiceAccount: config.injectorServiceAccount,
    nativeSidecars: config.nativeSidecars,
    ours,
  });
  if (decision.action === "skip" && decision.reason === "already-injected") {
    const touched = touchUp(pod, namespace ?? stringAt(objectAt(pod, "metadata"), "namespace") ?? "", context);
    return { decision, touchUp: touched, warnings: [...decision.warnings, ...touched.warnings] };
  }
  if (decision.action !== "inject") return { decision, warnings: decision.warnings };
  const metadata = objectAt(pod, "metadata");
  const choice = selectPolicy(context.policies, {
    podLabels: stringMapAt(metadata, "labels"),
    namespaceLabels: namespaceLabels ?? {},
    requested: stringMapAt(metadata, "annotations")[POLICY_ANNOTATION],
  });
  // A fresh nonce binds the signed policy document to this pod (its UID does not exist yet, often neither does its name).
  const podNamespace = namespace ?? stringAt(metadata, "namespace");
  const binding = config.signer !== undefined && podNamespace !== undefined ? { nonce: newBindingNonce(), namespace: podNamespace } : undefined;
  const rendered = render({ pod, config, policy: choice.policy, podSecurityLevel: level, native: decision.native, namespace, clusterDns: context.clusterDns, ...(binding && { binding }) });
  return { decision, choice, rendered, warnings: [...decision.warnings, ...choice.warnings, ...rendered.warnings] };
}
