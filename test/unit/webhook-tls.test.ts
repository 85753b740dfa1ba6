import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { caBundlePatch } from "../../webhook/cluster/ca-bundle.ts";
import { notAfter, planTls, serviceDnsNames, splitPem } from "../../webhook/tls/certificates.ts";

const DAY = 24 * 60 * 60 * 1000;
const names = serviceDnsNames("microenforcer-injector", "microenforcer-system");

describe("webhook/tls", () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const created = planTls(undefined, names, now);

  it("creates a CA and a serving certificate for the four service names, backdated for clock skew", () => {
    assert.equal(created.change, "created");
    const serving = new X509Certificate(created.material.cert);
    const ca = new X509Certificate(created.material.caBundle);
    assert.ok(serving.verify(ca.publicKey));
    assert.equal(serving.subjectAltName, names.map((n) => `DNS:${n}`).join(", "));
    assert.ok(ca.ca && !serving.ca);
    assert.ok(new Date(serving.validFrom) < now);
    assert.deepEqual(names, [
      "microenforcer-injector",
      "microenforcer-injector.microenforcer-system",
      "microenforcer-injector.microenforcer-system.svc",
      "microenforcer-injector.microenforcer-system.svc.cluster.local",
    ]);
  });

  it("keeps valid material as it is", () => {
    assert.deepEqual(planTls(created.material, names, new Date(now.getTime() + 100 * DAY)), { material: created.material, change: "" });
  });

  it("renews the serving certificate 30 days before it expires, or when the names change", () => {
    const late = planTls(created.material, names, new Date(notAfter(created.material.cert).getTime() - 20 * DAY));
    assert.equal(late.change, "serving-renewed");
    assert.equal(late.material.caBundle, created.material.caBundle);
    assert.equal(planTls(created.material, [...names, "extra.example"], now).change, "serving-renewed");
  });

  it("rotates the CA a year before it expires, trusting old and new until the old one expires", () => {
    const rotationDay = new Date(notAfter(created.material.caBundle).getTime() - 300 * DAY);
    const rotated = planTls(created.material, names, rotationDay);
    assert.equal(rotated.change, "ca-rotated");
    const [signer, previous] = splitPem(rotated.material.caBundle);
    assert.equal(previous, created.material.caBundle);
    assert.ok(new X509Certificate(rotated.material.cert).verify(new X509Certificate(signer!).publicKey));
    const afterExpiry = planTls(rotated.material, names, new Date(notAfter(previous!).getTime() + DAY));
    assert.deepEqual(splitPem(afterExpiry.material.caBundle), [signer]);
  });

  it("patches caBundle only into webhooks that lack it, guarded by their names", () => {
    const wanted = Buffer.from(created.material.caBundle).toString("base64");
    const configuration = { webhooks: [{ name: "a", clientConfig: { caBundle: wanted } }, { name: "b", clientConfig: {} }] } as Parameters<typeof caBundlePatch>[0];
    assert.deepEqual(caBundlePatch(configuration, created.material.caBundle), [
      { op: "test", path: "/webhooks/1/name", value: "b" },
      { op: "add", path: "/webhooks/1/clientConfig/caBundle", value: wanted },
    ]);
  });
});
