/**
 * What a running injected pod's policy annotations should become after RuntimePolicies
 * changed. The kubelet rewrites the downward-API file when the annotation changes, and the
 * sidecar hot-reloads it: policy changes reach running pods without a restart.
 */
import type { Operation } from "fast-json-patch";
import type { RuntimePolicy } from "../policies/schema.ts";
import { objectAt, stringMapAt, type JsonObject } from "./json.ts";
import { POLICY_ANNOTATION, POLICY_DOCUMENT_ANNOTATION, STATUS_ANNOTATION } from "./keys.ts";
import { policyDocument, selectPolicy } from "./policy-select.ts";
import { parseStatus } from "./status.ts";

const annotationPath = (key: string) => `/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;

/** The JSON patch that brings the pod's policy up to date; [] when it is, or it was not injected. */
export function policyRefresh(pod: JsonObject, policies: readonly RuntimePolicy[], namespaceLabels: Record<string, string>): Operation[] {
  const metadata = objectAt(pod, "metadata");
  const annotations = stringMapAt(metadata, "annotations");
  const statusText = annotations[STATUS_ANNOTATION];
  if (statusText === undefined) return [];
  // The policy name is the user's choice unless the injector wrote it.
  const ownName = parseStatus(statusText).annotations.includes(POLICY_ANNOTATION);
  const choice = selectPolicy(policies, {
    podLabels: stringMapAt(metadata, "labels"),
    namespaceLabels,
    requested: ownName ? undefined : annotations[POLICY_ANNOTATION],
  });
  const document = JSON.stringify(policyDocument(choice.policy));
  const patch: Operation[] = [];
  if (annotations[POLICY_DOCUMENT_ANNOTATION] !== document) patch.push({ op: "add", path: annotationPath(POLICY_DOCUMENT_ANNOTATION), value: document });
  if (ownName && annotations[POLICY_ANNOTATION] !== choice.policy.metadata.name) {
    patch.push({ op: "add", path: annotationPath(POLICY_ANNOTATION), value: choice.policy.metadata.name });
  }
  return patch;
}
