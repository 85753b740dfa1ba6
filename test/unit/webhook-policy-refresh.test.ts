import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { openDocument, verifierFromEnv } from "../../policies/signed-document.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { signerFrom } from "../../webhook/policy-document.ts";
import { render } from "../../webhook/render.ts";
import { validatePolicy } from "../../policies/load.ts";
import { policyRefresh, refreshable } from "../../webhook/policy-refresh.ts";

const policy = (name: string, spec: object) => validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name }, spec }, name);
const strict = policy("strict", { priority: 100, enforcementMode: "enforce", scope: { namespaceSelector: { matchLabels: { team: "a" } } } });
const lax = policy("lax", { priority: 0, forensics: { processActivity: false } });
const statusBy = (annotations: string[]) => JSON.stringify({ initContainers: ["microenforcer"], containers: [], volumes: [], env: {}, annotations, shareProcessNamespace: null });
const documentOf = (patch: ReturnType<typeof policyRefresh>) => JSON.parse((patch.find((op) => op.path.endsWith("policy-document")) as { value: string }).value);

describe("webhook/policy-refresh", () => {
  it("follows the scope when the injector chose the name, and renames", () => {
    const pod = { metadata: { annotations: { "microenforcer.dev/policy": "lax", "microenforcer.dev/status": statusBy(["microenforcer.dev/policy"]) } } };
    const patch = policyRefresh(pod, "shop", [strict, lax], { team: "a" });
    assert.equal(documentOf(patch).metadata.name, "strict");
    assert.deepEqual(patch.at(-1), { op: "add", path: "/metadata/annotations/microenforcer.dev~1policy", value: "strict" });
  });

  it("never hands a pod the weaker policy it names itself", () => {
    const pod = { metadata: { annotations: { "microenforcer.dev/policy": "lax", "microenforcer.dev/status": statusBy([]) } } };
    assert.equal(documentOf(policyRefresh(pod, "shop", [strict, lax], { team: "a" })).metadata.name, "strict");
  });

  it("changes nothing when the document is current", () => {
    const pod = { metadata: { annotations: { "microenforcer.dev/status": statusBy([]) } } };
    const first = policyRefresh(pod, "shop", [lax], {});
    const updated = { metadata: { annotations: { ...pod.metadata.annotations, "microenforcer.dev/policy-document": (first[0] as { value: string }).value } } };
    assert.deepEqual(policyRefresh(updated, "shop", [lax], {}), []);
  });

  it("does not throw on a status annotation the injector did not write", () => {
    for (const status of ["x", "{}", "[1]", '{"annotations":"no"}']) {
      const pod = { metadata: { annotations: { "microenforcer.dev/status": status, "microenforcer.dev/policy": "lax" } } };
      assert.equal(documentOf(policyRefresh(pod, "shop", [strict, lax], { team: "a" })).metadata.name, "strict");
    }
  });
});

describe("webhook/policy-refresh: which running pods the injector touches", () => {
  const withSidecar = (namespace: string, labels: Record<string, string> = {}) => ({
    metadata: { namespace, labels, annotations: { "microenforcer.dev/status": "{" } },
    spec: { initContainers: [{ name: "microenforcer" }], containers: [{ name: "app" }] },
  });
  const enabled = { "microenforcer.dev/injection": "enabled" };

  it("pods with our sidecar in namespaces labelled for injection, or that opted in", () => {
    assert.equal(refreshable(withSidecar("shop"), enabled, "microenforcer-system"), true);
    assert.equal(refreshable(withSidecar("tenant"), { "microenforcer.dev/injection": "required" }, "microenforcer-system"), true);
    assert.equal(refreshable(withSidecar("plain", { "microenforcer.dev/inject": "true" }), {}, "microenforcer-system"), true);
  });

  it("never pods of other namespaces, system namespaces, the injector's own, or without the sidecar", () => {
    assert.equal(refreshable(withSidecar("plain"), {}, "microenforcer-system"), false);
    assert.equal(refreshable(withSidecar("kube-system"), enabled, "microenforcer-system"), false);
    assert.equal(refreshable(withSidecar("microenforcer-system"), enabled, "microenforcer-system"), false);
    assert.equal(refreshable({ metadata: { namespace: "shop", annotations: { "microenforcer.dev/status": "{}" } }, spec: { containers: [{ name: "app" }] } }, enabled, "microenforcer-system"), false);
  });
});

describe("webhook/policy-refresh: signed documents", () => {
  const signer = signerFrom(generateKeyPairSync("ed25519").privateKey);
  const config = { ...defaultInjectorConfig(), signer };
  const rendered = () => {
    const pod = { metadata: { name: "p" }, spec: { containers: [{ name: "app", image: "a" }] } };
    return render({ pod, config, policy: lax, podSecurityLevel: "privileged", native: true, namespace: "shop", clusterDns: undefined, binding: { nonce: "n0nce", namespace: "shop" } }).pod;
  };

  it("renders a sidecar that accepts exactly the document rendered with it", () => {
    const pod = rendered() as { metadata: { annotations: Record<string, string> }; spec: { initContainers: Array<{ name: string; env: Array<{ name: string; value?: string }> }> } };
    const sidecar = pod.spec.initContainers.find((c) => c.name === "microenforcer")!;
    const env = Object.fromEntries(sidecar.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
    assert.equal(env.MICROENFORCER_POLICY_KEY, signer.publicKey);
    assert.equal(env.MICROENFORCER_POLICY_BINDING, "n0nce");
    const verifier = verifierFromEnv({ ...env, POD_NAMESPACE: "shop" }, "MICROENFORCER_POLICY_KEY", "MICROENFORCER_POLICY_BINDING");
    assert.equal(openDocument(pod.metadata.annotations["microenforcer.dev/policy-document"]!, "policy.json", verifier).policy.metadata.name, "lax");
  });

  it("re-signs only when the policy changed, bound to the nonce it reads back from the sidecar", () => {
    const pod = rendered();
    assert.deepEqual(policyRefresh(pod, "shop", [lax], {}, signer), [], "a new signature alone is no change");
    const patch = policyRefresh(pod, "shop", [lax, strict], { team: "a" }, signer);
    const verifier = { key: createPublicKey(signer.privateKey), keyId: signer.keyId, binding: { nonce: "n0nce", namespace: "shop" } };
    assert.equal(openDocument((patch[0] as { value: string }).value, "policy.json", verifier).policy.metadata.name, "strict");
  });

  it("will not sign for a sidecar that verifies with another key", () => {
    assert.throws(() => policyRefresh(rendered(), "shop", [lax], {}, signerFrom(generateKeyPairSync("ed25519").privateKey)), /a key this injector does not hold/);
    assert.throws(() => policyRefresh(rendered(), "shop", [lax], {}, undefined), /it signs none/);
  });
});
