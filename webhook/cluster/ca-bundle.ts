/**
 * Keeps our CA bundle in the MutatingWebhookConfiguration: patched at start and again
 * whenever something (a `kubectl apply` of the manifests, a GitOps sync) resets it.
 */
import { AdmissionregistrationV1Api, type KubeConfig, type V1MutatingWebhookConfiguration } from "@kubernetes/client-node";
import type { Operation } from "fast-json-patch";
import { startInformer, type Cache } from "./watch.ts";

/** JSON patch setting caBundle on every webhook of the configuration that lacks it (tests guard against reordering). */
export function caBundlePatch(configuration: V1MutatingWebhookConfiguration, caBundle: string): Operation[] {
  const wanted = Buffer.from(caBundle).toString("base64");
  return (configuration.webhooks ?? []).flatMap((webhook, i): Operation[] =>
    webhook.clientConfig.caBundle === wanted
      ? []
      : [
          { op: "test", path: `/webhooks/${i}/name`, value: webhook.name },
          { op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: wanted },
        ],
  );
}

export async function keepCaBundle(kc: KubeConfig, name: string, caBundle: () => string, log: (message: string) => void): Promise<Cache<V1MutatingWebhookConfiguration>> {
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  // Events may arrive while the informer starts, before it is assigned.
  const started: { informer?: Cache<V1MutatingWebhookConfiguration> } = {};
  const sync = () => {
    const configuration = started.informer?.get(name);
    if (configuration === undefined) return;
    const patch = caBundlePatch(configuration, caBundle());
    if (patch.length === 0) return;
    api.patchMutatingWebhookConfiguration({ name, body: patch }).then(
      () => log(`caBundle set on MutatingWebhookConfiguration ${name}`),
      (err: unknown) => log(`cannot set caBundle on MutatingWebhookConfiguration ${name}: ${(err as Error).message}`),
    );
  };
  started.informer = await startInformer(kc, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", () => api.listMutatingWebhookConfiguration(), sync, log);
  sync();
  return started.informer;
}
