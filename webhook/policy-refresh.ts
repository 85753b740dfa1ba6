/**
 * What an injected pod's policy annotations should become: after RuntimePolicies changed
 * (the kubelet rewrites the downward-API file when the annotation changes, and the sidecar
 * hot-reloads it, so policy changes reach running pods without a restart), and when an
 * injected pod is admitted again (its document is re-made, never taken from the pod).
 */
import type { Operation } from "fast-json-patch";
import type { RuntimePolicy } from "../policies/schema.ts";
import { namespaceMode } from "./decide.ts";
import { arrayAt, objectAt, stringAt, stringMapAt, type JsonObject } from "./json.ts";
import { INJECT_KEY, POLICY_ANNOTATION, POLICY_DOCUMENT_ANNOTATION, SIDECAR_NAME, STATUS_ANNOTATION, SYSTEM_NAMESPACES } from "./keys.ts";
import type { Binding } from "../policies/signed-document.ts";
import { documentCurrent, documentText, sidecarVerification, type Signer } from "./policy-document.ts";
import { selectPolicy, type PolicyChoice } from "./policy-select.ts";
import { parseStatus } from "./status.ts";

const annotationPath = (key: string) => `/metadata/annotations/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`;

/** Whether the injector wrote the pod's policy name (else the pod's owner asked for it). */
function injectorNamedPolicy(annotations: Record<string, string>): boolean {
  const text = annotations[STATUS_ANNOTATION];
  if (text === undefined) return false;
  try {
    return parseStatus(text).annotations.includes(POLICY_ANNOTATION);
  } catch {
    return false; // a status the injector did not write says nothing
  }
}

/**
 * Whether the injector may touch a running pod's policy: it runs a container named like our
 * sidecar, in a namespace whose label asks for injection (or, elsewhere, it asked itself with
 * the label the opt-in webhook selects on) — never in system namespaces or the injector's
 * own. Anything else the injector leaves alone, whatever its annotations say.
 */
export function refreshable(pod: JsonObject, namespaceLabels: Record<string, string>, injectorNamespace: string): boolean {
  const namespace = stringAt(objectAt(pod, "metadata"), "namespace");
  if (namespace === undefined || namespace === injectorNamespace || SYSTEM_NAMESPACES.includes(namespace)) return false;
  if (!runsSidecar(pod)) return false;
  return namespaceMode(namespaceLabels) !== "off" || stringMapAt(objectAt(pod, "metadata"), "labels")[INJECT_KEY] === "true";
}

/**
 * The JSON patch that brings the pod's policy up to date; [] when it is. A pod whose sidecar
 * verifies signed documents gets one signed by `signer` and bound to its nonce and
 * `namespace`; throws when this injector cannot sign one it would accept.
 */
/** Whether the pod has a container named like our sidecar (in a `required` namespace the validating layer vouches that it is the genuine one). */
export function runsSidecar(pod: JsonObject): boolean {
  const spec = objectAt(pod, "spec");
  return [...arrayAt(spec, "initContainers"), ...arrayAt(spec, "containers")].some((c) => stringAt(c, "name") === SIDECAR_NAME);
}

/** The policy a running pod is given now: what the refresh keeps its document at. */
export function runningPodPolicy(pod: JsonObject, policies: readonly RuntimePolicy[], namespaceLabels: Record<string, string>): PolicyChoice {
  const metadata = objectAt(pod, "metadata");
  const annotations = stringMapAt(metadata, "annotations");
  return selectPolicy(policies, {
    podLabels: stringMapAt(metadata, "labels"),
    namespaceLabels,
    requested: injectorNamedPolicy(annotations) ? undefined : annotations[POLICY_ANNOTATION],
  });
}

export function policyRefresh(pod: JsonObject, namespace: string, policies: readonly RuntimePolicy[], namespaceLabels: Record<string, string>, signer?: Signer): Operation[] {
  const metadata = objectAt(pod, "metadata");
  const annotations = stringMapAt(metadata, "annotations");
  const ownName = injectorNamedPolicy(annotations);
  const choice = runningPodPolicy(pod, policies, namespaceLabels);
  const { key, nonce } = sidecarVerification(pod);
  let binding: Binding | undefined;
  if (key !== undefined) {
    if (signer === undefined || key !== signer.publicKey) throw new Error(`its sidecar verifies policy documents with a key this injector does not hold (${signer === undefined ? "it signs none" : `its own is ${signer.keyId}`})`);
    if (!nonce) throw new Error("its sidecar has no binding nonce to sign for");
    binding = { nonce, namespace };
  }
  const patch: Operation[] = [];
  if (!documentCurrent(annotations[POLICY_DOCUMENT_ANNOTATION], choice.policy, signer, binding)) {
    patch.push({ op: "add", path: annotationPath(POLICY_DOCUMENT_ANNOTATION), value: documentText(choice.policy, signer, binding) });
  }
  if (ownName && annotations[POLICY_ANNOTATION] !== choice.policy.metadata.name) {
    patch.push({ op: "add", path: annotationPath(POLICY_ANNOTATION), value: choice.policy.metadata.name });
  }
  // A pod whose annotations were all removed needs the map back first.
  if (patch.length > 0 && objectAt(metadata, "annotations") === undefined) patch.unshift({ op: "add", path: "/metadata/annotations", value: {} });
  return patch;
}
