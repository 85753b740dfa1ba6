/**
 * One pod through the injector: decide, choose the policy, render. The admission handler
 * and `microenforcer inject` share this function.
 */
import type { RuntimePolicy } from "../policies/schema.ts";
import type { InjectorConfig } from "./config.ts";
import { decide, type Decision } from "./decide.ts";
import { objectAt, stringMapAt, type JsonObject } from "./json.ts";
import { POLICY_ANNOTATION } from "./keys.ts";
import { selectPolicy, type PolicyChoice } from "./policy-select.ts";
import { render, type Rendered } from "./render.ts";
import { podSecurityLevel } from "./security.ts";

export interface InjectContext {
  config: InjectorConfig;
  /** The RuntimePolicies to choose from (the informer's, or those of --policy FILE). */
  policies: readonly RuntimePolicy[];
  /** undefined without cluster access: the pod is then taken as in scope. */
  namespaceLabels: Record<string, string> | undefined;
}

export interface PodOutcome {
  decision: Decision;
  choice?: PolicyChoice;
  rendered?: Rendered;
  warnings: string[];
}

export function injectPod(pod: JsonObject, namespace: string | undefined, context: InjectContext): PodOutcome {
  const { config, namespaceLabels } = context;
  const decision = decide({ pod, namespace, namespaceLabels, injectorNamespace: config.injectorNamespace, nativeSidecars: config.nativeSidecars });
  if (!decision.inject) return { decision, warnings: decision.warnings };
  const metadata = objectAt(pod, "metadata");
  const choice = selectPolicy(context.policies, {
    podLabels: stringMapAt(metadata, "labels"),
    namespaceLabels: namespaceLabels ?? {},
    requested: stringMapAt(metadata, "annotations")[POLICY_ANNOTATION],
  });
  const rendered = render({ pod, config, policy: choice.policy, podSecurityLevel: podSecurityLevel(namespaceLabels), native: decision.native });
  return { decision, choice, rendered, warnings: [...decision.warnings, ...choice.warnings, ...rendered.warnings] };
}
