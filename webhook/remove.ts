/**
 * Takes out exactly what the status annotation says was injected: `inject --remove`, and
 * the proof (tested over the corpus) that injection kept everything else as it was.
 */
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";
import { STATUS_ANNOTATION } from "./keys.ts";
import { restorePodDns } from "./pod-dns.ts";
import { parseStatus } from "./status.ts";

function without(list: unknown, names: readonly string[]): unknown[] {
  return (Array.isArray(list) ? list : []).filter((item) => !names.includes(stringAt(item, "name") ?? ""));
}

/** Sets `parent[key]`, or deletes it when emptied: the apiserver never sends empty lists, so it was absent. */
function setList(parent: JsonObject, key: string, list: unknown[]): void {
  if (list.length === 0) delete parent[key];
  else parent[key] = list;
}

/** The pod without the injection; undefined when it carries no status annotation. */
export function removeInjection(input: JsonObject): JsonObject | undefined {
  const text = stringAt(objectAt(input.metadata, "annotations"), STATUS_ANNOTATION);
  if (text === undefined) return undefined;
  const status = parseStatus(text);
  const pod = structuredClone(input);
  const spec = objectAt(pod, "spec") ?? {};
  const metadata = objectAt(pod, "metadata")!;
  const annotations = objectAt(metadata, "annotations")!;

  setList(spec, "initContainers", without(spec.initContainers, status.initContainers));
  spec.containers = without(spec.containers, status.containers);
  setList(spec, "volumes", without(spec.volumes, status.volumes));
  const everyContainer = [...arrayAt(spec, "initContainers"), ...arrayAt(spec, "containers")].filter(isObject);
  for (const [variable, containers] of Object.entries(status.env)) {
    for (const container of everyContainer) {
      if (!containers.includes(stringAt(container, "name") ?? "")) continue;
      setList(container, "env", without(container.env, [variable]));
    }
  }
  for (const [volume, containers] of Object.entries(status.volumeMounts ?? {})) {
    for (const container of everyContainer) {
      if (containers.includes(stringAt(container, "name") ?? "")) setList(container, "volumeMounts", without(container.volumeMounts, [volume]));
    }
  }
  for (const container of everyContainer) {
    const previous = status.ldPreload?.[stringAt(container, "name") ?? ""];
    if (previous === undefined) continue;
    for (const e of arrayAt(container, "env")) if (isObject(e) && e.name === "LD_PRELOAD") e.value = previous;
  }
  if (status.shareProcessNamespace === null) delete spec.shareProcessNamespace;
  else spec.shareProcessNamespace = status.shareProcessNamespace;
  if (status.dns !== undefined) restorePodDns(spec, status.dns);
  for (const key of [...status.annotations, STATUS_ANNOTATION]) delete annotations[key];
  if (Object.keys(annotations).length === 0) delete metadata.annotations;
  if (Object.keys(metadata).length === 0) delete pod.metadata; // a pod template that had none
  return pod;
}
