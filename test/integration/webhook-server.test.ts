/** The admission server over real HTTPS, with certificates from the injector's own TLS code. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { request } from "node:https";
import type { AddressInfo } from "node:net";
import { parse } from "yaml";
import type { AdmissionDeps } from "../../webhook/admission.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { createMetrics } from "../../webhook/metrics.ts";
import { createAdmissionServer, type AdmissionServer } from "../../webhook/server.ts";
import { planTls } from "../../webhook/tls/certificates.ts";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/inject/${name}`, import.meta.url), "utf8");
const podOf = (name: string) => parse(fixture(name), { version: "1.1" }) as Record<string, unknown>;

interface Reply {
  status: number;
  body: string;
  json: () => Record<string, unknown>;
}

function call(port: number, ca: string, method: string, path: string, body?: string | Buffer, contentType = "application/json"): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "localhost", port, method, path, ca, headers: body === undefined ? {} : { "content-type": contentType } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) as Record<string, unknown> });
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

function review(object: unknown, extra: Record<string, unknown> = {}) {
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "6f9d2c4e-1111-2222-3333-444455556666",
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      namespace: "shop",
      operation: "CREATE",
      object,
      ...extra,
    },
  });
}

const responseOf = (reply: Reply) => reply.json().response as { uid: string; allowed: boolean; patch?: string; patchType?: string; warnings?: string[]; status?: { code: number; message: string } };
const patchOf = (reply: Reply) => JSON.parse(Buffer.from(responseOf(reply).patch ?? "", "base64").toString("utf8")) as unknown;

describe("admission server over HTTPS", function () {
  const tls = planTls(undefined, ["localhost"], new Date(), ["127.0.0.1"]).material;
  let server: AdmissionServer;
  let port: number;
  let ready = true;
  let labels: (ns: string) => Promise<Record<string, string> | undefined>;
  const deps: AdmissionDeps = {
    config: defaultInjectorConfig(),
    policies: () => [],
    namespaceLabels: (ns) => labels(ns),
    clusterDns: () => undefined,
    failClosed: false,
    metrics: createMetrics(),
  };
  const post = (body: string | Buffer, contentType?: string) => call(port, tls.caBundle, "POST", "/mutate", body, contentType);

  before(async () => {
    server = createAdmissionServer({ key: tls.key, cert: tls.cert, admission: deps, isReady: () => ready, bodyLimit: 256 * 1024 });
    await server.listen({ host: "127.0.0.1", port: 0 });
    port = (server.server.address() as AddressInfo).port;
  });
  after(() => server.close());
  beforeEach(() => {
    labels = async () => undefined;
    deps.failClosed = false;
  });

  it("injects a pod with the patch of its golden file, for real and for dryRun alike", async () => {
    const golden = (JSON.parse(fixture("plain-pod.patch.json")) as { patch: unknown }[])[0]!.patch;
    for (const extra of [{}, { dryRun: true }]) {
      const reply = await post(review(podOf("plain-pod.yaml"), extra));
      assert.equal(reply.status, 200, reply.body);
      const response = responseOf(reply);
      assert.deepEqual([response.uid, response.allowed, response.patchType], ["6f9d2c4e-1111-2222-3333-444455556666", true, "JSONPatch"]);
      assert.deepEqual(patchOf(reply), golden);
    }
  });

  it("uses the namespace's labels: skips where the namespace is not enabled, warns where Pod Security limits", async () => {
    labels = async () => ({ team: "x" });
    assert.deepEqual(responseOf(await post(review(podOf("plain-pod.yaml")))), { uid: "6f9d2c4e-1111-2222-3333-444455556666", allowed: true });
    labels = async () => ({ "microenforcer.dev/injection": "enabled", "pod-security.kubernetes.io/enforce": "restricted" });
    const response = responseOf(await post(review(podOf("run-as-non-root-no-uid.yaml"))));
    assert.match(response.warnings?.[0] ?? "", /^microenforcer: no runAsUser declared; the sidecar runs as UID 65532/);
  });

  it("admits skipped pods without a patch, warning when the owner did not ask for the skip", async () => {
    const response = responseOf(await post(review(podOf("host-pid.yaml"))));
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.match(response.warnings?.[0] ?? "", /^microenforcer: not injected: hostPID pods/);
  });

  it("lets other kinds and operations through untouched", async () => {
    const deployment = responseOf(await post(review({}, { kind: { group: "apps", version: "v1", kind: "Deployment" } })));
    assert.deepEqual(deployment, { uid: "6f9d2c4e-1111-2222-3333-444455556666", allowed: true });
    const update = responseOf(await post(review(podOf("plain-pod.yaml"), { operation: "UPDATE" })));
    assert.equal(update.patch, undefined);
  });

  it("fails open on its own errors by default, closed when configured", async () => {
    labels = async () => {
      throw new Error("namespaces \"shop\" is forbidden");
    };
    const open = responseOf(await post(review(podOf("plain-pod.yaml"))));
    assert.equal(open.allowed, true);
    assert.match(open.warnings?.[0] ?? "", /injector error: namespaces "shop" is forbidden; the pod was admitted without the sidecar/);
    deps.failClosed = true;
    const closed = responseOf(await post(review(podOf("plain-pod.yaml"))));
    assert.deepEqual([closed.allowed, closed.status?.code], [false, 500]);
  });

  const badBodies: [string, string | Buffer, string, number, RegExp][] = [
    ["malformed JSON", '{"apiVersion": ', "application/json", 400, /body is not valid JSON/],
    ["an empty body", "", "application/json", 400, /empty body: expected an AdmissionReview/],
    ["a JSON array", "[1,2]", "application/json", 400, /expected an AdmissionReview object, found \[1,2\]/],
    ["another apiVersion", JSON.stringify({ apiVersion: "admission.k8s.io/v1beta1", kind: "AdmissionReview" }), "application/json", 400, /expected apiVersion admission.k8s.io\/v1 and kind AdmissionReview, found "admission.k8s.io\/v1beta1"/],
    ["another kind", JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "Pod" }), "application/json", 400, /found "admission.k8s.io\/v1" and "Pod"/],
    ["no request", JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }), "application/json", 400, /has no request object/],
    ["no uid", JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request: {} }), "application/json", 400, /request has no uid/],
    ["YAML", "apiVersion: v1", "application/yaml", 415, /expected Content-Type application\/json/],
    ["a huge body", Buffer.alloc(300 * 1024, 0x20), "application/json", 413, /request body larger than 262144 bytes/],
  ];
  for (const [what, body, contentType, status, message] of badBodies) {
    it(`answers ${what} with ${status} and a message`, async () => {
      const reply = await post(body, contentType);
      assert.equal(reply.status, status, reply.body);
      assert.match(String(reply.json().error), message);
    });
  }

  it("counts what it did in /metrics", async () => {
    const text = (await call(port, tls.caBundle, "GET", "/metrics")).body;
    assert.match(text, /microenforcer_injector_admission_requests_total\{outcome="injected"\} \d+/);
    assert.match(text, /microenforcer_injector_skips_total\{reason="host-pid"\} 1/);
    assert.match(text, /microenforcer_injector_admission_requests_total\{outcome="invalid"\} \d+/);
    assert.match(text, /microenforcer_injector_admission_duration_seconds_count \d+/);
  });

  it("says when it is alive and when it is ready, and names the right route for a wrong one", async () => {
    assert.equal((await call(port, tls.caBundle, "GET", "/healthz")).status, 200);
    assert.equal((await call(port, tls.caBundle, "GET", "/readyz")).status, 200);
    ready = false;
    assert.equal((await call(port, tls.caBundle, "GET", "/readyz")).status, 503);
    ready = true;
    assert.match((await call(port, tls.caBundle, "GET", "/mutate")).json().error as string, /the webhook path is POST \/mutate/);
  });

  it("is trusted only through the injector's CA", async () => {
    const other = planTls(undefined, ["localhost"]).material;
    await assert.rejects(call(port, other.caBundle, "GET", "/healthz"), /self-signed certificate|unable to verify/);
  });
});
