/**
 * The webhook's CA and serving certificate, built with node-forge (keys from node:crypto,
 * which makes RSA keys in milliseconds where pure JavaScript takes seconds). Pure apart from
 * key generation: what to rotate and when is decided in planTls from the current material.
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import forge from "node-forge";

export interface KeyPair {
  cert: string;
  key: string;
}

/** What the shared Secret holds. `caBundle` starts with the signing CA; older CAs follow until they expire. */
export interface TlsMaterial {
  caBundle: string;
  caKey: string;
  cert: string;
  key: string;
}

const DAY = 24 * 60 * 60 * 1000;
export const CA_VALIDITY_DAYS = 3650;
export const SERVING_VALIDITY_DAYS = 365;
/** Clock skew between the apiserver and us must not make a fresh certificate "not yet valid". */
const BACKDATE = 60 * 60 * 1000;

/** The four names a Service answers to inside the cluster. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** forge writes CRLF line ends; everything else (node, openssl, bundles we compare) uses LF. */
const toPem = (cert: forge.pki.Certificate) => forge.pki.certificateToPem(cert).replace(/\r\n/g, "\n");

function newKeyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const { privateKey: pem } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs1", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  const privateKey = forge.pki.privateKeyFromPem(pem) as forge.pki.rsa.PrivateKey;
  return { privateKey, publicKey: forge.pki.rsa.setPublicKey(privateKey.n, privateKey.e), pem };
}

function newCertificate(publicKey: forge.pki.PublicKey, commonName: string, now: Date, days: number): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // A positive serial: clear the top bit of 16 random bytes.
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(now.getTime() - BACKDATE);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY);
  cert.setSubject([{ name: "commonName", value: commonName }]);
  return cert;
}

export function generateCa(now: Date = new Date(), days: number = CA_VALIDITY_DAYS): KeyPair {
  const keys = newKeyPair();
  const cert = newCertificate(keys.publicKey, `microenforcer-injector-ca-${now.toISOString().slice(0, 10)}`, now, days);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: toPem(cert), key: keys.pem };
}

export function issueServing(ca: KeyPair, dnsNames: readonly string[], ipAddresses: readonly string[] = [], now: Date = new Date(), days = SERVING_VALIDITY_DAYS): KeyPair {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const keys = newKeyPair();
  const cert = newCertificate(keys.publicKey, dnsNames[0] ?? "microenforcer-injector", now, days);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames: [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))] },
    { name: "authorityKeyIdentifier", keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.key), forge.md.sha256.create());
  return { cert: toPem(cert), key: keys.pem };
}

/** The certificates of a PEM bundle, in order. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((pem) => pem.trimEnd() + "\n") ?? [];
}

export const notAfter = (pem: string): Date => forge.pki.certificateFromPem(pem).validity.notAfter;

function dnsNamesOf(pem: string): string[] {
  const san = forge.pki.certificateFromPem(pem).getExtension("subjectAltName") as { altNames?: { type: number; value: string }[] } | null;
  return (san?.altNames ?? []).filter((n) => n.type === 2).map((n) => n.value);
}

function signedBy(certPem: string, caPem: string): boolean {
  try {
    return forge.pki.certificateFromPem(caPem).verify(forge.pki.certificateFromPem(certPem));
  } catch {
    return false;
  }
}

export interface TlsPlan {
  material: TlsMaterial;
  /** Why the material changed ("" when it did not). */
  change: "" | "created" | "ca-rotated" | "serving-renewed" | "expired-ca-dropped";
}

/**
 * Keeps the material valid: a new CA when there is none or it has under a year left (the old
 * one stays in the bundle until it expires, so clients that still trust only it keep working),
 * a new serving certificate when it has under 30 days left, names other SANs, or was not
 * signed by the current CA.
 */
export function planTls(current: TlsMaterial | undefined, dnsNames: readonly string[], now: Date = new Date(), ipAddresses: readonly string[] = []): TlsPlan {
  const [signer, ...older] = current === undefined ? [] : splitPem(current.caBundle);
  const valid = older.filter((pem) => notAfter(pem) > now);
  if (current === undefined || signer === undefined) {
    const ca = generateCa(now);
    return { material: { caBundle: ca.cert, caKey: ca.key, ...issueServing(ca, dnsNames, ipAddresses, now) }, change: "created" };
  }
  if (notAfter(signer).getTime() - now.getTime() < 365 * DAY) {
    const ca = generateCa(now);
    const bundle = [ca.cert, signer, ...valid].filter((pem) => notAfter(pem) > now).join("");
    return { material: { caBundle: bundle, caKey: ca.key, ...issueServing(ca, dnsNames, ipAddresses, now) }, change: "ca-rotated" };
  }
  // No serving certificate yet (its Secret is new): one is issued from the CA there is.
  const names = current.cert === "" ? [] : dnsNamesOf(current.cert);
  const renew =
    current.cert === "" ||
    notAfter(current.cert).getTime() - now.getTime() < 30 * DAY ||
    dnsNames.some((n) => !names.includes(n)) ||
    !signedBy(current.cert, signer);
  if (renew) {
    const serving = issueServing({ cert: signer, key: current.caKey }, dnsNames, ipAddresses, now);
    return { material: { ...current, caBundle: [signer, ...valid].join(""), ...serving }, change: "serving-renewed" };
  }
  if (valid.length < older.length) return { material: { ...current, caBundle: [signer, ...valid].join("") }, change: "expired-ca-dropped" };
  return { material: current, change: "" };
}
