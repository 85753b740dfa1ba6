/**
 * Which RuntimePolicy a pod runs with: the highest-priority policy whose scope matches the
 * namespace and pod labels (ties broken by name, so every replica picks the same), else the
 * built-in default. Admins rank policies; a pod's `microenforcer.dev/policy` annotation only
 * chooses among what the admin left open: a policy whose scope selects the pod and that is
 * ranked no lower than the admin's choice, or one that allows named selection. Anything else
 * the pod names is a warning, never a weaker policy.
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
  const matching = policies.filter((p) => inScope(p, subject)).sort(byPriorityThenName);
  const best = matching[0];
  const scoped: PolicyChoice = best !== undefined ? { policy: best, how: "scope", warnings } : { policy: builtInDefault, how: "default", warnings };
  if (subject.requested === undefined || subject.requested === scoped.policy.metadata.name) return scoped;
  const named = policies.find((p) => p.metadata.name === subject.requested);
  if (named === undefined) {
    warnings.push(`RuntimePolicy '${subject.requested}' named by the pod does not exist; ${scoped.policy.metadata.name} (chosen by scope) applies`);
    return scoped;
  }
  if (named.spec.scope?.allowNamedSelection === true) return { policy: named, how: "annotation", warnings };
  if (!inScope(named, subject)) {
    warnings.push(`RuntimePolicy '${subject.requested}' named by the pod does not select it (its scope) and does not allow named selection; ${scoped.policy.metadata.name} (chosen by scope) applies`);
    return scoped;
  }
  if (best !== undefined && named.spec.priority < best.spec.priority) {
    warnings.push(`RuntimePolicy '${subject.requested}' named by the pod ranks below ${best.metadata.name} (priority ${named.spec.priority} < ${best.spec.priority}) and does not allow named selection; ${best.metadata.name} applies`);
    return scoped;
  }
  return { policy: named, how: "annotation", warnings };
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
