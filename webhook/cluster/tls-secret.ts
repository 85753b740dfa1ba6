/**
 * The injector's TLS material lives in two Secrets every replica shares: the CA (its key
 * signs serving certificates the apiserver trusts) apart from the serving key, so the one
 * that must stay most private is never where the serving certificate is (a mounted
 * cert-manager-style Secret, a backup of it, a broader RBAC grant). Whoever comes first
 * creates them; the others read them (a lost create or update race means someone else
 * wrote: read again), so there are never two CAs.
 */
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { planTls, type TlsMaterial, type TlsPlan } from "../tls/certificates.ts";
import { statusOf } from "./kube.ts";

export interface TlsSecrets {
  namespace: string;
  /** tls.crt, tls.key and ca.crt (the bundle the apiserver is given). */
  serving: string;
  /** ca.crt (the bundle, signing CA first) and ca.key. */
  ca: string;
}

const b64 = (text: string) => Buffer.from(text).toString("base64");
const unb64 = (text: string | undefined) => (text === undefined ? undefined : Buffer.from(text, "base64").toString("utf8"));

async function read(core: CoreV1Api, namespace: string, name: string): Promise<V1Secret | undefined> {
  try {
    return await core.readNamespacedSecret({ namespace, name });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw err;
  }
}

/** What both Secrets hold together; a serving certificate not there yet is "" (planTls issues one). */
function materialOf(ca: V1Secret | undefined, serving: V1Secret | undefined): TlsMaterial | undefined {
  // Before the split the CA key lived in the serving Secret: adopt it from there once.
  const source = ca ?? serving;
  const caBundle = unb64(source?.data?.["ca.crt"]);
  const caKey = unb64(source?.data?.["ca.key"]);
  if (!caBundle || !caKey) return undefined;
  return { caBundle, caKey, cert: unb64(serving?.data?.["tls.crt"]) ?? "", key: unb64(serving?.data?.["tls.key"]) ?? "" };
}

function secret(namespace: string, name: string, type: string, data: Record<string, string>, existing: V1Secret | undefined): V1Secret {
  const resourceVersion = existing?.metadata?.resourceVersion;
  return {
    apiVersion: "v1",
    kind: "Secret",
    type,
    metadata: { name, namespace, labels: { "app.kubernetes.io/name": "microenforcer-injector" }, ...(resourceVersion ? { resourceVersion } : {}) },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

async function write(core: CoreV1Api, body: V1Secret, existing: V1Secret | undefined): Promise<void> {
  const { namespace, name } = body.metadata as { namespace: string; name: string };
  if (existing === undefined) await core.createNamespacedSecret({ namespace, body });
  else await core.replaceNamespacedSecret({ namespace, name, body });
}

/** Reads, creates or rotates the shared TLS Secrets; returns the material every replica serves. */
export async function ensureTlsSecrets(kc: KubeConfig, refs: TlsSecrets, dnsNames: readonly string[], ipAddresses: readonly string[] = []): Promise<TlsPlan> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 5; attempt++) {
    const [ca, serving] = await Promise.all([read(core, refs.namespace, refs.ca), read(core, refs.namespace, refs.serving)]);
    const current = materialOf(ca, serving);
    const plan = planTls(current, dnsNames, new Date(), ipAddresses);
    const { material } = plan;
    const caChanged = ca === undefined || material.caKey !== current?.caKey || material.caBundle !== current.caBundle;
    const servingChanged = serving === undefined || caChanged || material.cert !== current?.cert || serving.data?.["ca.key"] !== undefined;
    try {
      // The CA first: a serving certificate is only ever published once its CA is.
      if (caChanged) await write(core, secret(refs.namespace, refs.ca, "Opaque", { "ca.crt": material.caBundle, "ca.key": material.caKey }, ca), ca);
      if (servingChanged) {
        await write(core, secret(refs.namespace, refs.serving, "kubernetes.io/tls", { "ca.crt": material.caBundle, "tls.crt": material.cert, "tls.key": material.key }, serving), serving);
      }
      return plan;
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // another replica wrote first: use theirs
    }
  }
  throw new Error(`Secrets ${refs.namespace}/${refs.ca} and ${refs.serving} kept changing under us; giving up`);
}
