/**
 * Checks pods against the Kubernetes OpenAPI schema with kubernetes-models (generated from
 * the upstream OpenAPI spec and kept current with Kubernetes releases; it validates with
 * ajv and needs no cluster). The apiserver's own validation runs in the integration tier.
 */
import { Pod } from "kubernetes-models/v1/Pod";
import type { JsonObject } from "../../webhook/json.ts";
import { mapPods } from "../../webhook/workloads.ts";

/** Every pod in a document (a Pod, a template, List items) as a standalone v1 Pod. */
export function podsIn(document: unknown): JsonObject[] {
  const pods: JsonObject[] = [];
  mapPods(document, (pod) => {
    pods.push({ apiVersion: "v1", kind: "Pod", metadata: pod.metadata ?? {}, spec: pod.spec });
    return pod;
  });
  return pods;
}

/** The schema errors of a pod, one line each ("" entries never). */
export function schemaErrors(pod: JsonObject): string[] {
  try {
    new Pod(pod as ConstructorParameters<typeof Pod>[0]).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    return errors?.map((e) => `${e.instancePath || "/"}: ${e.message ?? "invalid"}`) ?? [(err as Error).message];
  }
}
