/**
 * Which RuntimePolicy a pod runs with: the one its `microenforcer.dev/policy` annotation
 * names, else the highest-priority policy whose scope matches the namespace and pod labels
 * (ties broken by name, so every replica picks the same), else the built-in default.
 */
import { defaultPolicy } from "../policies/load.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { matchesSelector } from "./label-selector.ts";

export interface PolicyChoice {
  policy: RuntimePolicy;
  how: "annotation" | "scope" | "default";
  warnings: string[];
}

export interface PolicySubject {
  podLabels: Record<string, string>;
  namespaceLabels: Record<string, string>;
  /** The pod's own `microenforcer.dev/policy` annotation, when the user set one. */
  requested: string | undefined;
}

export function inScope(policy: RuntimePolicy, subject: PolicySubject): boolean {
  const scope = policy.spec.scope;
  return matchesSelector(scope?.namespaceSelector, subject.namespaceLabels) && matchesSelector(scope?.podSelector, subject.podLabels);
}

function byPriorityThenName(a: RuntimePolicy, b: RuntimePolicy): number {
  return b.spec.priority - a.spec.priority || (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
}

// Built once: applying the schema's defaults on every admission would be most of its cost.
const builtInDefault = defaultPolicy();

export function selectPolicy(policies: readonly RuntimePolicy[], subject: PolicySubject): PolicyChoice {
  const warnings: string[] = [];
  if (subject.requested !== undefined) {
    const named = policies.find((p) => p.metadata.name === subject.requested);
    if (named !== undefined) return { policy: named, how: "annotation", warnings };
    warnings.push(`RuntimePolicy '${subject.requested}' named by the pod does not exist; choosing by scope instead`);
  }
  const matching = policies.filter((p) => inScope(p, subject)).sort(byPriorityThenName);
  const best = matching[0];
  if (best !== undefined) return { policy: best, how: "scope", warnings };
  return { policy: builtInDefault, how: "default", warnings };
}

/** The document embedded in the pod: the policy as the sidecar reads it, without cluster bookkeeping. */
export function policyDocument(policy: RuntimePolicy): RuntimePolicy {
  const { name, generation } = policy.metadata;
  return {
    apiVersion: policy.apiVersion,
    kind: policy.kind,
    metadata: generation === undefined ? { name } : { name, generation },
    spec: policy.spec,
  };
}
