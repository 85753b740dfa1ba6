/**
 * Pod → injected pod, from a deep copy of the raw JSON (a typed round trip would drop fields
 * this code does not know), then the JSON patch the webhook answers with. Pure and
 * deterministic: the webhook and `microenforcer inject` both call it.
 */
import jsonpatch, { type Operation } from "fast-json-patch";
import type { InjectorConfig, PodSecurityLevel } from "./config.ts";
import { attributeContainers } from "./attribution.ts";
import { CONTAINER_ENV, EXEC_SOCKET_ENV } from "../microenforcer/sidecar-contract.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { arrayAt, ensureArray, ensureObject, type JsonObject } from "./json.ts";
import { POLICY_ANNOTATION, POLICY_DOCUMENT_ANNOTATION, PRELOAD_INIT_NAME, PRELOAD_VOLUME, SIDECAR_NAME, STATUS_ANNOTATION } from "./keys.ts";
import { applyPodDns, podDns, type ClusterDns } from "./pod-dns.ts";
import type { Binding } from "../policies/signed-document.ts";
import { documentText } from "./policy-document.ts";
import { sidecarSecurity } from "./security.ts";
import { deliverPreload, preloadInitContainer } from "./preload.ts";
import { sidecarContainer, sidecarVolumes } from "./sidecar.ts";
import type { InjectionStatus } from "./status.ts";
import { podWorkload } from "./workload.ts";

export interface RenderInput {
  pod: JsonObject;
  config: InjectorConfig;
  policy: RuntimePolicy;
  podSecurityLevel: PodSecurityLevel;
  /** Native sidecar (first init container, restartPolicy Always) or classic last container. */
  native: boolean;
  /** The pod's namespace and the cluster's DNS: where the pod's resolver goes when the policy wants DNS names. */
  namespace: string | undefined;
  clusterDns: ClusterDns | undefined;
  /** What the signed policy document is bound to (with config.signer); without it the document is the plain policy. */
  binding?: Binding;
}

export interface Rendered {
  pod: JsonObject;
  /** RFC 6902 operations from the input pod to the rendered one (keys with `/` escaped as `~1`). */
  patch: Operation[];
  status: InjectionStatus;
  warnings: string[];
}

export function render(input: RenderInput): Rendered {
  const pod = structuredClone(input.pod);
  const spec = ensureObject(pod, "spec");
  const annotations = ensureObject(ensureObject(pod, "metadata"), "annotations");
  const security = sidecarSecurity(spec, input.podSecurityLevel, input.config.allowPtrace, input.config.runtimeDefaultCapabilities);
  const warnings = [...security.warnings];
  const { native } = input;

  const attributions = ["initContainers", "containers"].map((key) => (Array.isArray(spec[key]) ? attributeContainers(spec[key]) : { set: [], warnings: [] }));
  const attributed = attributions.flatMap((a) => a.set);
  warnings.push(...attributions.flatMap((a) => a.warnings));
  const volumes = sidecarVolumes();
  ensureArray(spec, "volumes").push(...volumes);
  // Complete mode: app init containers only where the sidecar already runs (native).
  const preload = input.policy.spec.forensics.preload
    ? deliverPreload([...(native ? arrayAt(spec, "initContainers") : []), ...arrayAt(spec, "containers")])
    : undefined;
  warnings.push(...(preload?.warnings ?? []));

  const dns = podDns({ spec, namespace: input.namespace, policy: input.policy.spec, clusterDns: input.clusterDns, sidecarBindsLowPorts: security.bindsLowPorts });
  warnings.push(...dns.warnings);
  const dnsBefore = dns.change === undefined ? undefined : applyPodDns(spec, dns.change);

  const shareProcessNamespace = typeof spec.shareProcessNamespace === "boolean" ? spec.shareProcessNamespace : null;
  if (shareProcessNamespace === false) warnings.push("shareProcessNamespace was false; set to true so the sidecar can see the app's processes");
  spec.shareProcessNamespace = true;

  const addedAnnotations = [POLICY_DOCUMENT_ANNOTATION];
  // The annotation names the policy that runs: a request that was not honoured is replaced.
  if (annotations[POLICY_ANNOTATION] !== input.policy.metadata.name) {
    annotations[POLICY_ANNOTATION] = input.policy.metadata.name;
    addedAnnotations.unshift(POLICY_ANNOTATION);
  }
  // Signed and bound to this pod when the injector signs; the sidecar then checks both.
  const signer = input.binding === undefined ? undefined : input.config.signer;
  annotations[POLICY_DOCUMENT_ANNOTATION] = documentText(input.policy, signer, input.binding);
  const env: Record<string, string[]> = attributed.length > 0 ? { [CONTAINER_ENV]: attributed } : {};
  if (preload !== undefined && preload.containers.length > 0) {
    env[EXEC_SOCKET_ENV] = preload.containers;
    if (preload.addedLdPreload.length > 0) env.LD_PRELOAD = preload.addedLdPreload;
  }
  const status: InjectionStatus = {
    initContainers: [...(preload !== undefined ? [PRELOAD_INIT_NAME] : []), ...(native ? [SIDECAR_NAME] : [])],
    containers: native ? [] : [SIDECAR_NAME],
    volumes: volumes.map((v) => v.name as string),
    env,
    annotations: addedAnnotations,
    shareProcessNamespace,
    ...(dnsBefore === undefined ? {} : { dns: dnsBefore }),
    ...(preload !== undefined && preload.containers.length > 0 && { volumeMounts: { [PRELOAD_VOLUME]: preload.containers } }),
    ...(preload !== undefined && Object.keys(preload.ldPreload).length > 0 && { ldPreload: preload.ldPreload }),
  };
  annotations[STATUS_ANNOTATION] = JSON.stringify(status);

  // The sidecar is added by one explicit operation: diffing a list with an element inserted
  // first would rewrite every element after it.
  const patch = jsonpatch.compare(input.pod, pod);
  const sidecar = sidecarContainer({ ...input.config, signer }, security.securityContext, native, podWorkload(input.pod, input.config), input.binding?.nonce);
  const list = native ? "initContainers" : "containers";
  if (!Array.isArray(spec[list])) {
    spec[list] = [sidecar];
    patch.push({ op: "add", path: `/spec/${list}`, value: [sidecar] });
  } else if (native) {
    spec[list].unshift(sidecar);
    patch.push({ op: "add", path: `/spec/${list}/0`, value: sidecar });
  } else {
    spec[list].push(sidecar);
    patch.push({ op: "add", path: `/spec/${list}/-`, value: sidecar });
  }
  if (preload !== undefined) {
    // First of all: the library is in place before any other container starts.
    const init = preloadInitContainer(input.config, security.securityContext);
    if (!Array.isArray(spec.initContainers)) {
      spec.initContainers = [init];
      patch.push({ op: "add", path: "/spec/initContainers", value: [init] });
    } else {
      spec.initContainers.unshift(init);
      patch.push({ op: "add", path: "/spec/initContainers/0", value: init });
    }
  }
  return { pod, patch, status, warnings };
}
