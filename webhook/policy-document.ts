/**
 * The policy document the injector writes into a pod's annotation: signed with its key and
 * bound to the pod when it has a signing key (always in a cluster; the offline `inject`
 * command has none and writes the plain policy), and how it tells whether a pod's document
 * is already the one it would write (a new signature differs every time, so the comparison
 * is of what was signed).
 */
import { createPublicKey, type KeyObject } from "node:crypto";
import { POLICY_BINDING_ENV, POLICY_KEY_ENV } from "../microenforcer/sidecar-contract.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { keyIdOf, publicKeyText, readSigned, signDocument, type Binding } from "../policies/signed-document.ts";
import { arrayAt, objectAt, stringAt, type JsonObject } from "./json.ts";
import { SIDECAR_NAME } from "./keys.ts";
import { policyDocument } from "./policy-select.ts";

export interface Signer {
  privateKey: KeyObject;
  /** As the sidecar's environment carries it (base64 SPKI). */
  publicKey: string;
  keyId: string;
}

export function signerFrom(privateKey: KeyObject): Signer {
  return { privateKey, publicKey: publicKeyText(privateKey), keyId: keyIdOf(privateKey) };
}

/** The annotation's text for `policy`: signed and bound when there is a signer and a binding, else the plain policy. */
export function documentText(policy: RuntimePolicy, signer: Signer | undefined, binding: Binding | undefined, now: Date = new Date()): string {
  const document = policyDocument(policy);
  return signer === undefined || binding === undefined ? JSON.stringify(document) : signDocument(document, binding, signer.privateKey, now);
}

/** Whether `text` already is the document for `policy` and `binding` (signed by `signer` when there is one). */
export function documentCurrent(text: string | undefined, policy: RuntimePolicy, signer: Signer | undefined, binding: Binding | undefined): boolean {
  if (text === undefined) return false;
  const wanted = JSON.stringify(policyDocument(policy));
  if (signer === undefined || binding === undefined) return text === wanted;
  const payload = readSigned(text, createPublicKey(signer.privateKey));
  return payload !== undefined && JSON.stringify(payload.policy) === wanted && payload.binding?.nonce === binding.nonce && payload.binding.namespace === binding.namespace;
}

/** What the pod's sidecar was given at creation to verify its documents with: the injector's key and the pod's nonce. */
export function sidecarVerification(pod: JsonObject): { key?: string; nonce?: string } {
  const spec = objectAt(pod, "spec");
  const sidecar = [...arrayAt(spec, "initContainers"), ...arrayAt(spec, "containers")].find((c) => stringAt(c, "name") === SIDECAR_NAME);
  const env = arrayAt(sidecar, "env");
  const value = (name: string) => stringAt(env.find((e) => stringAt(e, "name") === name), "value");
  const key = value(POLICY_KEY_ENV);
  const nonce = value(POLICY_BINDING_ENV);
  return { ...(key !== undefined && { key }), ...(nonce !== undefined && { nonce }) };
}
