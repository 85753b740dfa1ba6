/**
 * Kubernetes LabelSelector semantics (metav1.LabelSelectorAsSelector): every matchLabels
 * entry and every matchExpressions requirement must hold; an empty selector matches all.
 */
import type { RuntimePolicySpec } from "../policies/schema.ts";

export type LabelSelector = NonNullable<NonNullable<RuntimePolicySpec["scope"]>["podSelector"]>;
type Requirement = NonNullable<LabelSelector["matchExpressions"]>[number];

/** What makes a selector invalid for the apiserver: In/NotIn need values, Exists/DoesNotExist take none. */
export function selectorProblems(selector: LabelSelector): string[] {
  return (selector.matchExpressions ?? []).flatMap((r, i) => {
    const count = r.values?.length ?? 0;
    if ((r.operator === "In" || r.operator === "NotIn") && count === 0) {
      return [`matchExpressions[${i}] (${r.key} ${r.operator}): needs at least one value`];
    }
    if ((r.operator === "Exists" || r.operator === "DoesNotExist") && count > 0) {
      return [`matchExpressions[${i}] (${r.key} ${r.operator}): takes no values`];
    }
    return [];
  });
}

function holds(requirement: Requirement, labels: Record<string, string>): boolean {
  const present = Object.hasOwn(labels, requirement.key);
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case "In":
      return present && values.includes(labels[requirement.key]!);
    case "NotIn":
      return !present || !values.includes(labels[requirement.key]!);
    case "Exists":
      return present;
    case "DoesNotExist":
      return !present;
  }
}

/** An invalid selector matches nothing, as the apiserver would refuse to evaluate it. */
export function matchesSelector(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return true;
  if (selectorProblems(selector).length > 0) return false;
  const byLabel = Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
  return byLabel && (selector.matchExpressions ?? []).every((r) => holds(r, labels));
}
