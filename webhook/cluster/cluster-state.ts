/**
 * What the webhook knows about the cluster: RuntimePolicies and namespace labels, from
 * informers, and the refresh of running pods' policies whenever either changes.
 */
import { isIP } from "node:net";
import { CoreV1Api, CustomObjectsApi, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1Namespace, type V1Service } from "@kubernetes/client-node";
import { validatePolicy } from "../../policies/load.ts";
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { JsonObject } from "../json.ts";
import type { InjectorMetrics } from "../metrics.ts";
import type { Signer } from "../policy-document.ts";
import { policyRefresh, refreshable } from "../policy-refresh.ts";
import { startInformer, type Cache } from "./watch.ts";
import { InputError } from "../../policies/input-error.ts";

export interface ClusterState {
  policies(): readonly RuntimePolicy[];
  /** The kube-dns Service's cluster IPs (what kubelets' clusterDNS points at); undefined when there is none. */
  clusterDnsServers(): string[] | undefined;
  namespaceLabels(namespace: string): Promise<Record<string, string>>;
  /** Brings every running injected pod's policy up to date now (also runs after each change). */
  refreshPods(): Promise<void>;
  stop(): Promise<void>;
}

const GROUP = { group: "microenforcer.dev", version: "v1alpha1", plural: "runtimepolicies" };
const KUBE_DNS = { namespace: "kube-system", name: "kube-dns" };

function serviceAddresses(service: V1Service | undefined): string[] | undefined {
  const spec = service?.spec;
  const addresses = (spec?.clusterIPs ?? (spec?.clusterIP === undefined ? [] : [spec.clusterIP])).filter((ip) => isIP(ip) !== 0);
  return addresses.length > 0 ? addresses : undefined;
}

export interface ClusterStateOptions {
  injectorNamespace: string;
  /** Signs the documents of pods whose sidecars verify them. */
  signer: Signer | undefined;
}

export async function startClusterState(kc: KubeConfig, options: ClusterStateOptions, metrics: InjectorMetrics, log: (message: string) => void): Promise<ClusterState> {
  const { injectorNamespace, signer } = options;
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  let valid: RuntimePolicy[] = [];
  const reported = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const refreshPods = async (): Promise<void> => {
    let next: string | undefined;
    do {
      const page = await core.listPodForAllNamespaces({ limit: 500, _continue: next });
      for (const pod of page.items) {
        const namespace = pod.metadata?.namespace ?? "";
        const namespaceLabels = namespaces.get(namespace)?.metadata?.labels ?? {};
        let patch;
        try {
          if (!refreshable(pod as unknown as JsonObject, namespaceLabels, injectorNamespace)) continue;
          patch = policyRefresh(pod as unknown as JsonObject, namespace, valid, namespaceLabels, signer);
        } catch (err) {
          // One odd pod must not stop the refresh of every pod listed after it.
          metrics.policyUpdates.inc({ result: "skipped" });
          log(`skipping pod ${namespace}/${pod.metadata?.name} in the policy refresh: ${(err as Error).message}`);
          continue;
        }
        if (patch.length === 0) continue;
        try {
          await core.patchNamespacedPod({ name: pod.metadata?.name ?? "", namespace, body: patch });
          metrics.policyUpdates.inc({ result: "updated" });
        } catch (err) {
          metrics.policyUpdates.inc({ result: "failed" });
          log(`cannot update the policy of pod ${namespace}/${pod.metadata?.name}: ${(err as Error).message}`);
        }
      }
      next = page.metadata?._continue || undefined;
    } while (next !== undefined);
  };
  // Changes come in bursts (an apply of several policies): refresh once, after they settle.
  const scheduleRefresh = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      running = running.then(refreshPods).catch((err: unknown) => log(`policy refresh failed: ${(err as Error).message}`));
    }, 500);
  };

  // The informer reports the policies it lists while it starts, before it is assigned here:
  // those early events are picked up by the validPolicies() call after the start.
  const started: { policies?: Cache<KubernetesObject> } = {};
  const policies: Cache<KubernetesObject> = (started.policies = await startInformer(
    kc,
    `/apis/${GROUP.group}/${GROUP.version}/${GROUP.plural}`,
    () => custom.listClusterCustomObject(GROUP) as Promise<KubernetesListObject<KubernetesObject>>,
    () => {
      if (started.policies === undefined) return;
      valid = validPolicies();
      scheduleRefresh();
    },
    log,
  ));
  const namespaces: Cache<V1Namespace> = await startInformer(kc, "/api/v1/namespaces", () => core.listNamespace(), scheduleRefresh, log);

  // The cluster DNS pods' resolvers are pointed at after the sidecar's forwarder (webhook/pod-dns.ts).
  let dnsServers: string[] | undefined;
  const dnsChanged = () => {
    const next = serviceAddresses(dnsService?.get(KUBE_DNS.name, KUBE_DNS.namespace));
    if (next?.join() !== dnsServers?.join()) log(next === undefined ? `no ${KUBE_DNS.namespace}/${KUBE_DNS.name} Service: pods get no DNS names unless --cluster-dns is given` : `cluster DNS ${next.join(", ")} (${KUBE_DNS.namespace}/${KUBE_DNS.name})`);
    dnsServers = next;
  };
  let dnsService: Cache<V1Service> | undefined;
  try {
    dnsService = await startInformer(
      kc,
      `/api/v1/namespaces/${KUBE_DNS.namespace}/services`,
      () => core.listNamespacedService({ namespace: KUBE_DNS.namespace, fieldSelector: `metadata.name=${KUBE_DNS.name}` }),
      dnsChanged,
      log,
      `metadata.name=${KUBE_DNS.name}`,
    );
  } catch (err) {
    log(`cannot watch ${KUBE_DNS.namespace}/${KUBE_DNS.name} (${(err as Error).message}): pods get no DNS names unless --cluster-dns is given`);
  }
  dnsChanged();

  function validPolicies(): RuntimePolicy[] {
    return policies.list().flatMap((object) => {
      const name = object.metadata?.name ?? "(unnamed)";
      try {
        return [validatePolicy(object, `RuntimePolicy ${name}`)];
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        const key = `${name}@${object.metadata?.resourceVersion}`;
        if (!reported.has(key)) log(`ignoring invalid ${err.problems.join("; ")}`);
        reported.add(key);
        return [];
      }
    });
  }
  valid = validPolicies();
  scheduleRefresh();

  return {
    policies: () => valid,
    clusterDnsServers: () => dnsServers,
    async namespaceLabels(namespace) {
      const cached = namespaces.get(namespace);
      // A namespace created a moment ago may not have reached the informer yet.
      return (cached ?? (await core.readNamespace({ name: namespace }))).metadata?.labels ?? {};
    },
    refreshPods: () => (running = running.then(refreshPods)),
    async stop() {
      clearTimeout(timer);
      await Promise.all([policies.stop(), namespaces.stop(), dnsService?.stop()]);
      await running.catch(() => undefined);
    },
  };
}
