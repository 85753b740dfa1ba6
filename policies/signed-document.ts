/**
 * The policy document the injector embeds in a pod, signed and bound to that pod, and what
 * the sidecar makes of it. The injector signs with its Ed25519 key; the sidecar verifies with
 * the public key and the binding nonce the injector put in the sidecar's environment at
 * creation (a container's spec cannot change afterwards). So a document someone else wrote,
 * or one the injector signed for another pod, is refused, whoever managed to put it in the
 * annotation. What is signed is the exact text of the payload, carried as a string: no
 * canonical JSON is needed to verify it.
 */
import { createHash, createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { InputError } from "./input-error.ts";
import { parsePolicies, validatePolicy } from "./load.ts";
import type { RuntimePolicy } from "./schema.ts";

export const SIGNED_KIND = "SignedRuntimePolicy";
const API_VERSION = "microenforcer.dev/v1alpha1";

/** What ties a document to one pod: a random nonce in its sidecar's environment, and its namespace. */
export interface Binding {
  nonce: string;
  namespace: string;
}

export interface SignedPayload {
  policy: RuntimePolicy;
  binding: Binding;
  issuedAt: string;
}

interface Envelope {
  apiVersion: string;
  kind: string;
  keyId: string;
  payload: string;
  signature: string;
}

/** Where the policy in force came from, for every record that announces it. */
export interface DocumentSource {
  /** sha256 of the document's text, as read from the file. */
  digest: string;
  /** The key that signed it ("ed25519:" and 16 hex digits of its hash), or "unsigned". */
  signer: string;
}

const spki = (key: KeyObject): Buffer => (key.type === "public" ? key : createPublicKey(key)).export({ format: "der", type: "spki" });

/** A public key as the sidecar's environment carries it: base64 of its SPKI DER (from either half of the pair). */
export function publicKeyText(key: KeyObject): string {
  return spki(key).toString("base64");
}

export function keyIdOf(key: KeyObject): string {
  return `ed25519:${createHash("sha256").update(spki(key)).digest("hex").slice(0, 16)}`;
}

export function newBindingNonce(): string {
  return randomBytes(16).toString("base64url");
}

/** The annotation's text: the policy, bound to a pod, signed by `privateKey`. */
export function signDocument(policy: RuntimePolicy, binding: Binding, privateKey: KeyObject, issuedAt: Date): string {
  const payload = JSON.stringify({ policy, binding, issuedAt: issuedAt.toISOString() } satisfies SignedPayload);
  const signature = sign(null, Buffer.from(payload), privateKey).toString("base64");
  return JSON.stringify({ apiVersion: API_VERSION, kind: SIGNED_KIND, keyId: keyIdOf(privateKey), payload, signature } satisfies Envelope);
}

const isEnvelope = (value: unknown): value is Envelope =>
  typeof value === "object" &&
  value !== null &&
  (value as Envelope).kind === SIGNED_KIND &&
  ["keyId", "payload", "signature"].every((k) => typeof (value as Record<string, unknown>)[k] === "string");

/**
 * The payload of a document signed with `key`; undefined when the text is not one (not an
 * envelope, or a signature that does not verify). For the injector, which re-signs only
 * what changed.
 */
export function readSigned(text: string, key: KeyObject): SignedPayload | undefined {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isEnvelope(envelope) || !verify(null, Buffer.from(envelope.payload), key, Buffer.from(envelope.signature, "base64"))) return undefined;
  try {
    return JSON.parse(envelope.payload) as SignedPayload;
  } catch {
    return undefined;
  }
}

/** What the sidecar checks a document against: its injector's key and its own binding. */
export interface Verifier {
  key: KeyObject;
  keyId: string;
  binding: Binding;
}

/** The verifier the injector configured in the sidecar's environment; undefined when it configured none (plain policy files). */
export function verifierFromEnv(env: NodeJS.ProcessEnv, keyVariable: string, bindingVariable: string): Verifier | undefined {
  const keyText = env[keyVariable];
  if (keyText === undefined || keyText === "") return undefined;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(keyText, "base64"), format: "der", type: "spki" });
  } catch (err) {
    throw new InputError([`${keyVariable}: not a public key (base64 SPKI): ${(err as Error).message}`]);
  }
  const nonce = env[bindingVariable];
  const namespace = env.POD_NAMESPACE;
  if (!nonce || !namespace) throw new InputError([`${keyVariable} is set, but ${bindingVariable} or POD_NAMESPACE is not: documents cannot be bound to this pod`]);
  return { key, keyId: keyIdOf(key), binding: { nonce, namespace } };
}

const digestOf = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

/**
 * The policy a document carries, signed or plain, without checking any signature: for the
 * preload installer (an init container without the sidecar's key), whose library mode the
 * sidecar, which does check, writes again before the kubelet starts any app container.
 */
export function unverifiedPolicy(text: string, file: string): RuntimePolicy {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    envelope = undefined;
  }
  if (!isEnvelope(envelope)) return parsePolicies(text, file)[0]!;
  let payload: Partial<SignedPayload>;
  try {
    payload = JSON.parse(envelope.payload) as Partial<SignedPayload>;
  } catch (err) {
    throw new InputError([`${file}: the signed document's payload is not JSON: ${(err as Error).message}`]);
  }
  return validatePolicy(payload.policy, `${file} (signed policy)`);
}

/**
 * The policy of a document as the sidecar reads it from `file`: a plain RuntimePolicy when
 * no verifier is configured, else only a document signed with the verifier's key for this
 * very pod. Throws InputError naming the cause.
 */
export function openDocument(text: string, file: string, verifier: Verifier | undefined): { policy: RuntimePolicy; source: DocumentSource } {
  const digest = digestOf(text);
  if (verifier === undefined) return { policy: parsePolicies(text, file)[0]!, source: { digest, signer: "unsigned" } };
  const refuse = (cause: string): never => {
    throw new InputError([`${file}: ${cause}`]);
  };
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    envelope = undefined;
  }
  if (!isEnvelope(envelope)) return refuse(`not a signed policy document: this sidecar accepts only documents its injector signed (key ${verifier.keyId})`);
  if (!verify(null, Buffer.from(envelope.payload), verifier.key, Buffer.from(envelope.signature, "base64"))) {
    return refuse(`the signature does not verify with the injector's key ${verifier.keyId} (the document says it was signed by ${envelope.keyId}): it was changed, or written by someone else`);
  }
  const payload = JSON.parse(envelope.payload) as Partial<SignedPayload>;
  const binding = payload.binding;
  if (binding?.nonce !== verifier.binding.nonce) return refuse(`the document was signed for another pod (binding ${JSON.stringify(binding?.nonce)}, this pod's is ${JSON.stringify(verifier.binding.nonce)})`);
  if (binding.namespace !== verifier.binding.namespace) return refuse(`the document was signed for namespace ${JSON.stringify(binding.namespace)}, not ${JSON.stringify(verifier.binding.namespace)}`);
  return { policy: validatePolicy(payload.policy, `${file} (signed policy)`), source: { digest, signer: envelope.keyId } };
}
