/**
 * Finds the pods in what users apply: a Pod, a workload's pod template (Deployment,
 * StatefulSet, DaemonSet, Job, ReplicaSet, ReplicationController, OpenShift DeploymentConfig,
 * anything with spec.template), a CronJob's job template, and the items of a List.
 */
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";

export interface PodSite {
  kind: string;
  /** name, or generateName followed by `*` for pods from controllers. */
  name: string;
  namespace: string | undefined;
}

type PodMapper = (pod: JsonObject, site: PodSite) => JsonObject;

function siteOf(document: JsonObject): PodSite {
  const metadata = objectAt(document, "metadata");
  const generated = stringAt(metadata, "generateName");
  return {
    kind: stringAt(document, "kind") ?? "object",
    name: stringAt(metadata, "name") ?? (generated !== undefined ? `${generated}*` : "(unnamed)"),
    namespace: stringAt(metadata, "namespace"),
  };
}

/** Applies `fn` to a template as a pod and writes its metadata and spec back when it changed. */
function mapTemplate(template: JsonObject, site: PodSite, fn: PodMapper): void {
  const pod: JsonObject = { metadata: objectAt(template, "metadata") ?? {}, spec: template.spec };
  const result = fn(pod, { ...site, namespace: stringAt(pod.metadata, "namespace") ?? site.namespace });
  if (result === pod) return;
  if (result.metadata === undefined) delete template.metadata;
  else template.metadata = result.metadata;
  template.spec = result.spec;
}

/** The object with fn applied to each of its pods (the input is not modified). */
export function mapPods(document: unknown, fn: PodMapper): unknown {
  if (!isObject(document)) return document;
  const kind = stringAt(document, "kind");
  if (kind === "Pod") return fn(document, siteOf(document));
  if (kind === "List" || (kind?.endsWith("List") === true && Array.isArray(document.items))) {
    return { ...document, items: arrayAt(document, "items").map((item) => mapPods(item, fn)) };
  }
  const copy = structuredClone(document);
  const template = kind === "CronJob" ? objectAt(objectAt(objectAt(copy.spec, "jobTemplate"), "spec"), "template") : objectAt(copy.spec, "template");
  if (template === undefined || !isObject(template.spec)) return document;
  mapTemplate(template, siteOf(document), fn);
  return copy;
}
