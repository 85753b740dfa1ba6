/**
 * Keeps the sidecar-identity ConfigMap (sidecar-identity.ts) holding this injector's facts:
 * written at start, and again whenever it is deleted or changed (an apply, an admin's edit).
 */
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from "@kubernetes/client-node";
import { IDENTITY_CONFIGMAP, identityData, type IdentityData, type InjectorFacts } from "../sidecar-identity.ts";
import { statusOf } from "./kube.ts";
import { startInformer, type Cache } from "./watch.ts";

const same = (a: IdentityData | undefined, b: IdentityData) => a !== undefined && Object.keys(b).every((k) => a[k] === b[k]) && Object.keys(a).length === Object.keys(b).length;

export async function keepSidecarIdentity(kc: KubeConfig, namespace: string, facts: InjectorFacts, log: (message: string) => void): Promise<Cache<V1ConfigMap>> {
  const core = kc.makeApiClient(CoreV1Api);
  const started: { informer?: Cache<V1ConfigMap> } = {};
  let writing = false;
  const sync = async (): Promise<void> => {
    if (writing || started.informer === undefined) return;
    const current = started.informer.get(IDENTITY_CONFIGMAP, namespace);
    const wanted = identityData(current?.data, facts);
    if (same(current?.data, wanted)) return;
    writing = true;
    try {
      const body: V1ConfigMap = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: IDENTITY_CONFIGMAP, namespace, labels: { "app.kubernetes.io/name": "microenforcer-injector" }, ...(current ? { resourceVersion: current.metadata?.resourceVersion } : {}) },
        data: wanted,
      };
      if (current === undefined) await core.createNamespacedConfigMap({ namespace, body });
      else await core.replaceNamespacedConfigMap({ namespace, name: IDENTITY_CONFIGMAP, body });
      log(`sidecar identity published in ConfigMap ${namespace}/${IDENTITY_CONFIGMAP} (images ${wanted.images}; policy keys ${wanted.policyKeys ?? "none"})`);
    } catch (err) {
      // 409: another replica wrote first; its change comes back through the watch.
      if (statusOf(err) !== 409) log(`cannot publish the sidecar identity in ConfigMap ${namespace}/${IDENTITY_CONFIGMAP}: ${(err as Error).message}`);
    } finally {
      writing = false;
    }
  };
  started.informer = await startInformer(kc, `/api/v1/namespaces/${namespace}/configmaps`, () => core.listNamespacedConfigMap({ namespace }), () => void sync(), log);
  await sync();
  return started.informer;
}
