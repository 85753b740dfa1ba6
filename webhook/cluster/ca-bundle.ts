/**
 * Keeps our CA bundle in our webhook configurations (the injecting MutatingWebhookConfiguration
 * and the exec ValidatingWebhookConfiguration): patched at start and again whenever
 * something (a `kubectl apply` of the manifests, a GitOps sync) resets it.
 */
import { AdmissionregistrationV1Api, type KubeConfig, type V1MutatingWebhookConfiguration, type V1ValidatingWebhookConfiguration } from "@kubernetes/client-node";
import type { Operation } from "fast-json-patch";
import { startInformer, type Cache } from "./watch.ts";

type WebhookConfiguration = V1MutatingWebhookConfiguration | V1ValidatingWebhookConfiguration;
export type WebhookConfigurationKind = "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration";

/** JSON patch setting caBundle on every webhook of the configuration that lacks it (tests guard against reordering). */
export function caBundlePatch(configuration: WebhookConfiguration, caBundle: string): Operation[] {
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

export async function keepCaBundle(kc: KubeConfig, kind: WebhookConfigurationKind, name: string, caBundle: () => string, log: (message: string) => void): Promise<Cache<WebhookConfiguration>> {
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  const mutating = kind === "MutatingWebhookConfiguration";
  // Events may arrive while the informer starts, before it is assigned.
  const started: { informer?: Cache<WebhookConfiguration> } = {};
  const sync = () => {
    const configuration = started.informer?.get(name);
    if (configuration === undefined) return;
    const patch = caBundlePatch(configuration, caBundle());
    if (patch.length === 0) return;
    (mutating ? api.patchMutatingWebhookConfiguration({ name, body: patch }) : api.patchValidatingWebhookConfiguration({ name, body: patch })).then(
      () => log(`caBundle set on ${kind} ${name}`),
      (err: unknown) => log(`cannot set caBundle on ${kind} ${name}: ${(err as Error).message}`),
    );
  };
  const path = `/apis/admissionregistration.k8s.io/v1/${mutating ? "mutating" : "validating"}webhookconfigurations`;
  const list = (): Promise<{ items: WebhookConfiguration[] }> => (mutating ? api.listMutatingWebhookConfiguration() : api.listValidatingWebhookConfiguration());
  started.informer = await startInformer(kc, path, list, sync, log);
  sync();
  return started.informer;
}
