/**
 * `microenforcer inject` on a YAML stream: every document parsed the way kubectl reads it
 * (YAML 1.1: `0644` is octal, `yes` a boolean), every pod in it injected (or the injection
 * removed), and the stream written back. Unknown kinds pass through.
 */
import type { Operation } from "fast-json-patch";
import { parseAllDocuments, stringify } from "yaml";
import { injectPod, type InjectContext } from "./inject.ts";
import type { JsonObject } from "./json.ts";
import { removeInjection } from "./remove.ts";
import { mapPods, type PodSite } from "./workloads.ts";
import { InputError } from "../policies/input-error.ts";

export type InjectMode = "inject" | "remove";

export interface YamlResult {
  output: string;
  /** Per injected pod (a Pod or a workload's template), the JSON patch the webhook would answer. */
  patches: { pod: string; patch: Operation[] }[];
  /** What happened to each pod and what its owner should know, one line each. */
  messages: string[];
}

const where = (site: PodSite) => `${site.kind}/${site.name}`;

function injectOne(context: InjectContext, messages: string[], patches: YamlResult["patches"]) {
  return (pod: JsonObject, site: PodSite): JsonObject => {
    const outcome = injectPod(pod, site.namespace, context);
    const { decision, choice } = outcome;
    const changed = outcome.rendered ?? outcome.touchUp;
    if (changed !== undefined && changed.patch.length > 0) patches.push({ pod: where(site), patch: changed.patch });
    messages.push(
      decision.action === "inject"
        ? `${where(site)}: injected (${decision.reason}), RuntimePolicy ${choice!.policy.metadata.name} (${choice!.how})`
        : decision.action === "refuse"
          ? `${where(site)}: refused (${decision.reason}): ${decision.detail}`
          : `${where(site)}: not injected (${decision.reason}): ${decision.detail}${outcome.touchUp?.patch.length ? "; brought up to date" : ""}`,
    );
    for (const warning of outcome.warnings) messages.push(`${where(site)}: warning: ${warning}`);
    return changed?.pod ?? pod;
  };
}

function removeOne(messages: string[]) {
  return (pod: JsonObject, site: PodSite): JsonObject => {
    try {
      const removed = removeInjection(pod);
      messages.push(`${where(site)}: ${removed === undefined ? "not injected, left as is" : "injection removed"}`);
      return removed ?? pod;
    } catch (err) {
      throw new InputError([`${where(site)}: ${(err as Error).message}`]);
    }
  };
}

export function injectYaml(text: string, source: string, context: InjectContext, mode: InjectMode = "inject"): YamlResult {
  const documents = parseAllDocuments(text, { version: "1.1" });
  const problems = documents.flatMap((doc, i) =>
    doc.errors.map((e) => `${source}${documents.length > 1 ? ` (document ${i + 1})` : ""}: line ${e.linePos?.[0]?.line ?? "?"}: ${e.message.split("\n")[0]}`),
  );
  if (problems.length > 0) throw new InputError(problems);

  const messages: string[] = [];
  const patches: YamlResult["patches"] = [];
  const mapper = mode === "inject" ? injectOne(context, messages, patches) : removeOne(messages);
  const outputs: string[] = [];
  for (const doc of documents) {
    const input: unknown = doc.toJS();
    if (input != null) outputs.push(stringify(mapPods(input, mapper), { version: "1.1", lineWidth: 0 }));
  }
  if (outputs.length === 0) throw new InputError([`${source}: no Kubernetes object found`]);
  return { output: outputs.join("---\n"), patches, messages };
}
