/**
 * Signed policy documents, as the injector writes them and the sidecar reads them: only a
 * document signed with the injector's key for this very pod is accepted; each refusal names
 * its cause.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { InputError } from "../../policies/input-error.ts";
import { defaultPolicy, validatePolicy } from "../../policies/load.ts";
import { keyIdOf, newBindingNonce, openDocument, publicKeyText, signDocument, unverifiedPolicy, verifierFromEnv, type Verifier } from "../../policies/signed-document.ts";

const injector = generateKeyPairSync("ed25519").privateKey;
const stranger = generateKeyPairSync("ed25519").privateKey;
const strict = validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "strict" }, spec: { enforcementMode: "enforce" } }, "strict");
const nonce = newBindingNonce();
const env = { MICROENFORCER_POLICY_KEY: publicKeyText(injector), MICROENFORCER_POLICY_BINDING: nonce, POD_NAMESPACE: "shop" };
const verifier = verifierFromEnv(env, "MICROENFORCER_POLICY_KEY", "MICROENFORCER_POLICY_BINDING") as Verifier;
const FILE = "/etc/microenforcer/policy/policy.json";

function refusal(text: string): string {
  try {
    openDocument(text, FILE, verifier);
  } catch (err) {
    assert.ok(err instanceof InputError);
    return err.problems.join("\n");
  }
  assert.fail("the document was accepted");
}

describe("policies/signed-document", () => {
  it("accepts what the injector signed for this pod, with its digest and signer", () => {
    const text = signDocument(strict, { nonce, namespace: "shop" }, injector, new Date());
    const { policy, source } = openDocument(text, FILE, verifier);
    assert.equal(policy.metadata.name, "strict");
    assert.equal(policy.spec.enforcementMode, "enforce");
    assert.equal(source.signer, keyIdOf(injector));
    assert.match(source.signer, /^ed25519:[0-9a-f]{16}$/);
    assert.match(source.digest, /^sha256:[0-9a-f]{64}$/);
  });

  it("refuses a plain policy once the sidecar was given a key", () => {
    assert.match(refusal(JSON.stringify(defaultPolicy())), /not a signed policy document: this sidecar accepts only documents its injector signed \(key ed25519:/);
  });

  it("refuses a document signed with another key", () => {
    assert.match(refusal(signDocument(strict, { nonce, namespace: "shop" }, stranger, new Date())), /the signature does not verify with the injector's key ed25519:\w+ \(the document says it was signed by ed25519:\w+\)/);
  });

  it("refuses a signed document whose payload was edited (every switch off)", () => {
    const envelope = JSON.parse(signDocument(strict, { nonce, namespace: "shop" }, injector, new Date()));
    envelope.payload = envelope.payload.replace('"processActivity":true', '"processActivity":false');
    assert.match(refusal(JSON.stringify(envelope)), /the signature does not verify/);
  });

  it("refuses a document the injector signed for another pod, or another namespace", () => {
    assert.match(refusal(signDocument(strict, { nonce: newBindingNonce(), namespace: "shop" }, injector, new Date())), /signed for another pod \(binding "[\w-]+", this pod's is "[\w-]+"\)/);
    assert.match(refusal(signDocument(strict, { nonce, namespace: "payments" }, injector, new Date())), /signed for namespace "payments", not "shop"/);
  });

  it("refuses a signed policy that is not a valid RuntimePolicy", () => {
    const bad = { ...strict, spec: { ...strict.spec, enforcementMode: "off" } } as unknown as typeof strict;
    assert.match(refusal(signDocument(bad, { nonce, namespace: "shop" }, injector, new Date())), /enforcementMode: expected one of "audit", "enforce"/);
  });

  it("reads plain policies without a verifier, as a policy file given to watch", () => {
    const { policy, source } = openDocument(JSON.stringify(strict), FILE, undefined);
    assert.equal(policy.metadata.name, "strict");
    assert.equal(source.signer, "unsigned");
  });

  it("gives the preload installer the policy of a signed document or a plain one, unchecked", () => {
    assert.equal(unverifiedPolicy(signDocument(strict, { nonce, namespace: "shop" }, stranger, new Date()), FILE).spec.enforcementMode, "enforce");
    assert.equal(unverifiedPolicy(JSON.stringify(strict), FILE).metadata.name, "strict");
    assert.throws(() => unverifiedPolicy(JSON.stringify({ kind: "SignedRuntimePolicy", keyId: "k", payload: "{", signature: "s" }), FILE), InputError);
  });

  it("says what is wrong with the sidecar's verification settings", () => {
    assert.equal(verifierFromEnv({}, "K", "B"), undefined);
    assert.throws(() => verifierFromEnv({ K: "bm90IGEga2V5" }, "K", "B"), /K: not a public key/);
    assert.throws(() => verifierFromEnv({ K: env.MICROENFORCER_POLICY_KEY }, "K", "B"), /K is set, but B or POD_NAMESPACE is not/);
  });
});
