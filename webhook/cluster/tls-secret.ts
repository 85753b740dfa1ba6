/**
 * The CA and serving certificate live in one Secret that every replica shares. Whoever
 * comes first creates it; the others read it (a lost create or update race means someone
 * else wrote: read again), so there are never two CAs.
 */
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { planTls, type TlsMaterial, type TlsPlan } from "../tls/certificates.ts";
import { statusOf } from "./kube.ts";

export interface SecretRef {
  namespace: string;
  name: string;
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const unb64 = (text: string | undefined) => (text === undefined ? undefined : Buffer.from(text, "base64").toString("utf8"));

function materialOf(secret: V1Secret): TlsMaterial | undefined {
  const data = secret.data ?? {};
  const [caBundle, caKey, cert, key] = ["ca.crt", "ca.key", "tls.crt", "tls.key"].map((k) => unb64(data[k]));
  return caBundle && caKey && cert && key ? { caBundle, caKey, cert, key } : undefined;
}

function secretOf(ref: SecretRef, material: TlsMaterial, resourceVersion?: string): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/tls",
    metadata: { name: ref.name, namespace: ref.namespace, labels: { "app.kubernetes.io/name": "microenforcer-injector" }, ...(resourceVersion ? { resourceVersion } : {}) },
    data: { "ca.crt": b64(material.caBundle), "ca.key": b64(material.caKey), "tls.crt": b64(material.cert), "tls.key": b64(material.key) },
  };
}

/** Reads, creates or rotates the shared TLS Secret; returns the material every replica serves. */
export async function ensureTlsSecret(kc: KubeConfig, ref: SecretRef, dnsNames: readonly string[], ipAddresses: readonly string[] = []): Promise<TlsPlan> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 5; attempt++) {
    let existing: V1Secret | undefined;
    try {
      existing = await core.readNamespacedSecret(ref);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const plan = planTls(existing === undefined ? undefined : materialOf(existing), dnsNames, new Date(), ipAddresses);
    if (plan.change === "") return plan;
    try {
      if (existing === undefined) await core.createNamespacedSecret({ namespace: ref.namespace, body: secretOf(ref, plan.material) });
      else await core.replaceNamespacedSecret({ ...ref, body: secretOf(ref, plan.material, existing.metadata?.resourceVersion) });
      return plan;
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // another replica wrote first: use theirs
    }
  }
  throw new Error(`Secret ${ref.namespace}/${ref.name} kept changing under us; giving up`);
}
