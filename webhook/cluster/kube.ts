/** Cluster access for the webhook: a kubeconfig when one is given or found, else none at all. */
import { existsSync } from "node:fs";
import { CoreV1Api, KubeConfig, VersionApi } from "@kubernetes/client-node";
import { parseKubeVersion, supportsNativeSidecars } from "../config.ts";
import type { JsonObject } from "../json.ts";

const IN_CLUSTER_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** --kubeconfig, else $KUBECONFIG, else the in-cluster service account; undefined: no cluster access. */
export function loadKubeConfig(file: string | undefined, env: NodeJS.ProcessEnv): KubeConfig | undefined {
  const kc = new KubeConfig();
  const path = file ?? env.KUBECONFIG;
  if (path !== undefined && path !== "") {
    kc.loadFromFile(path);
    return kc;
  }
  if (env.KUBERNETES_SERVICE_HOST !== undefined && existsSync(IN_CLUSTER_TOKEN)) {
    kc.loadFromCluster();
    return kc;
  }
  return undefined;
}

/** Whether the apiserver runs native sidecars (≥ 1.29), from its /version. */
export async function clusterRunsNativeSidecars(kc: KubeConfig): Promise<boolean> {
  const info = await kc.makeApiClient(VersionApi).getCode();
  const version = parseKubeVersion(`${info.major.replace(/\D/g, "")}.${info.minor.replace(/\D/g, "")}`) ?? parseKubeVersion(info.gitVersion);
  if (version === undefined) throw new Error(`cannot read the Kubernetes version from ${JSON.stringify(info.gitVersion)}`);
  return supportsNativeSidecars(version.major, version.minor);
}

/** The HTTP status of a client-node error (ApiException), or undefined. */
export function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/** The container of the injector's own pod whose image it is, when the pod has several. */
const INJECTOR_CONTAINER = "injector";

/**
 * The image the injector itself runs, from its own pod (POD_NAME and POD_NAMESPACE, from
 * the downward API): the sidecar runs the same program, and an image an admin set with
 * kustomize `images:` or a registry mirror then reaches the sidecars too. Undefined
 * without those variables.
 */
export async function ownImage(kc: KubeConfig, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  const { POD_NAME: name, POD_NAMESPACE: namespace } = env;
  if (!name || !namespace) return undefined;
  const pod = await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace });
  const containers = pod.spec?.containers ?? [];
  return (containers.find((c) => c.name === INJECTOR_CONTAINER) ?? (containers.length === 1 ? containers[0] : undefined))?.image;
}

/** A pod as stored now (for the exec webhook); undefined when there is none. */
export async function readPod(kc: KubeConfig, namespace: string, name: string): Promise<JsonObject | undefined> {
  try {
    return (await kc.makeApiClient(CoreV1Api).readNamespacedPod({ name, namespace })) as unknown as JsonObject;
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}
