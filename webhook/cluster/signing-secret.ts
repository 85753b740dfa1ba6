/**
 * The injector's policy-signing key (Ed25519), in a Secret every replica shares: whoever
 * comes first creates it, the others read it (a lost create race means someone else wrote:
 * read again), so every replica signs with the same key and every sidecar verifies with it.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { statusOf } from "./kube.ts";

const KEY = "policy-signing.key";

export async function ensureSigningKey(kc: KubeConfig, namespace: string, name: string): Promise<KeyObject> {
  const core = kc.makeApiClient(CoreV1Api);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const existing = await core.readNamespacedSecret({ namespace, name });
      const pem = existing.data?.[KEY];
      if (pem === undefined) throw new Error(`Secret ${namespace}/${name} has no ${KEY}`);
      return createPrivateKey(Buffer.from(pem, "base64").toString("utf8"));
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const { privateKey } = generateKeyPairSync("ed25519");
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    try {
      await core.createNamespacedSecret({
        namespace,
        body: { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: { name, namespace, labels: { "app.kubernetes.io/name": "microenforcer-injector" } }, data: { [KEY]: Buffer.from(pem).toString("base64") } },
      });
      return privateKey;
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // another replica created it first: read theirs
    }
  }
  throw new Error(`Secret ${namespace}/${name} could not be read or created`);
}
