/**
 * The Kubernetes keys and names of the injector (DESIGN.md contracts). What the sidecar reads
 * (variables, mount paths) is in microenforcer/sidecar-contract.ts.
 */
export const NAMESPACE_INJECTION_LABEL = "microenforcer.dev/injection";
export const INJECT_KEY = "microenforcer.dev/inject";
export const POLICY_ANNOTATION = "microenforcer.dev/policy";
export const POLICY_DOCUMENT_ANNOTATION = "microenforcer.dev/policy-document";
export const STATUS_ANNOTATION = "microenforcer.dev/status";
/** Per-pod override of the sidecar form: "true" native sidecar, "false" classic container. */
export const NATIVE_SIDECAR_ANNOTATION = "microenforcer.dev/native-sidecar";
export const PSA_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce";

export const SIDECAR_NAME = "microenforcer";
export const POLICY_VOLUME = "microenforcer-policy";
export const SPOOL_VOLUME = "microenforcer-spool";
/** Complete mode: the emptyDir holding the preload library, and the init container that fills it. */
export const PRELOAD_VOLUME = "microenforcer-preload";
export const PRELOAD_INIT_NAME = "microenforcer-preload";
/** The library (~20 KB) and its mode file; the socket takes no space. */
export const PRELOAD_SIZE_LIMIT = "8Mi";
/** The injector's own containers: never attributed, given the library, or counted as the workload's. */
export const isOurContainer = (name: string): boolean => name === SIDECAR_NAME || name === PRELOAD_INIT_NAME;

/** Namespaces whose pods are never injected, whatever their labels say. */
export const SYSTEM_NAMESPACES: readonly string[] = ["kube-system", "kube-public", "kube-node-lease"];
