/**
 * The admission server under reviews made to exhaust it: bodies declared too large are
 * refused before they are read, large reviews are answered one at a time on the review
 * worker (and turned away with 429 beyond a few at once), reviews with more JSON values than
 * any pod are refused unparsed, and ordinary reviews keep being answered meanwhile.
 * `npm run bench:webhook` measures the latency target (p99 < 100 ms under 8 attackers).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import type { AddressInfo } from "node:net";
import { connect, type TLSSocket } from "node:tls";
import { parse } from "yaml";
import type { AdmissionDeps } from "../../webhook/admission.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { createMetrics } from "../../webhook/metrics.ts";
import { createAdmissionServer, type AdmissionServer } from "../../webhook/server.ts";
import { planTls } from "../../webhook/tls/certificates.ts";

const pod = parse(readFileSync(new URL("../fixtures/inject/plain-pod.yaml", import.meta.url), "utf8"), { version: "1.1" }) as { metadata: Record<string, unknown> };

function review(uid: string, object: unknown = pod): string {
  return JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: { uid, kind: { group: "", version: "v1", kind: "Pod" }, resource: { group: "", version: "v1", resource: "pods" }, namespace: "shop", operation: "CREATE", object },
  });
}

/** A valid pod of about `bytes`, mostly labels: the shape that costs most per byte. */
function bigPod(labels: number, valueLength = 16): unknown {
  return { ...pod, metadata: { ...pod.metadata, labels: Object.fromEntries(Array.from({ length: labels }, (_, i) => [`k-${i}`, "v".repeat(valueLength)])) } };
}

describe("admission server: review lanes, sizes and bounds", function () {
  this.timeout(120_000);
  const tls = planTls(undefined, ["localhost"], new Date(), ["127.0.0.1"]).material;
  const metrics = createMetrics();
  const deps: AdmissionDeps = {
    config: defaultInjectorConfig(),
    policies: () => [],
    namespaceLabels: async () => ({ "microenforcer.dev/injection": "enabled" }),
    clusterDns: () => undefined,
    failClosed: false,
    metrics,
  };
  let server: AdmissionServer;
  let port: number;

  before(async () => {
    server = createAdmissionServer({ key: tls.key, cert: tls.cert, admission: deps, isReady: () => true });
    await server.listen({ host: "127.0.0.1", port: 0 });
    port = (server.server.address() as AddressInfo).port;
  });
  after(async () => server.close());

  function post(body: string | Buffer, agent = new Agent({ keepAlive: false })): Promise<{ status: number; json: Record<string, any>; ms: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = request({ host: "localhost", port, method: "POST", path: "/mutate", agent, ca: tls.caBundle, headers: { "content-type": "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()), ms: performance.now() - started }));
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  /** A request whose headers declare `length` bytes of body, of which nothing is sent yet. */
  async function declare(length: number): Promise<{ socket: TLSSocket; response: Promise<string> }> {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port, ca: tls.caBundle, servername: "localhost" }, () => resolve(s));
      s.once("error", reject);
    });
    socket.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
    let text = "";
    const response = new Promise<string>((resolve) => {
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes("\r\n\r\n")) resolve(text);
      });
      socket.on("close", () => resolve(text));
      socket.on("error", () => resolve(text));
    });
    return { socket, response };
  }

  it("answers a maximal (3 MiB) review on the worker, with the same injection as a small one", async () => {
    const body = review("big", bigPod(95_000, 18));
    assert.ok(body.length > 2.5 * 2 ** 20, `${body.length} bytes`);
    const [big, small] = await Promise.all([post(body), post(review("small"))]);
    assert.equal(big.status, 200, JSON.stringify(big.json).slice(0, 300));
    assert.equal(big.json.response.uid, "big");
    const patchOf = (r: typeof big) => JSON.parse(Buffer.from(r.json.response.patch, "base64").toString()) as Array<{ path: string }>;
    assert.deepEqual(patchOf(big).map((op) => op.path), patchOf(small).map((op) => op.path));
    assert.match(metrics.render(), /microenforcer_injector_injections_total\{form="native"\} [2-9]/, "what the worker counted reaches /metrics");
  });

  it("refuses a body declared over the limit before reading any of it", async () => {
    const { socket, response } = await declare(10 * 2 ** 20);
    assert.match(await response, /^HTTP\/1\.1 413/);
    socket.destroy();
    assert.match(metrics.render(), /microenforcer_injector_rejected_reviews_total\{reason="too-large"\} 1/);
  });

  it("turns away large reviews beyond four at once with 429, and still answers small ones", async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => declare(2 * 2 ** 20)));
    const extra = await post(review("fifth", bigPod(5000)));
    assert.equal(extra.status, 429);
    assert.match(extra.json.error, /too many reviews at once \(4 large reviews in progress\)/);
    const small = await post(review("meanwhile"));
    assert.equal(small.status, 200);
    for (const { socket } of held) socket.destroy();
  });

  it("refuses a review holding more JSON values than any pod, without parsing it", async () => {
    const reply = await post(review("values", bigPod(120_000, 1)));
    assert.equal(reply.status, 400);
    assert.match(reply.json.error, /holds more than 100000 JSON values/);
  });

  it("keeps answering ordinary reviews while 8 clients send maximal ones", async () => {
    const attack = review("attack", bigPod(95_000, 18));
    const end = performance.now() + 4000;
    const attackers = Array.from({ length: 8 }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const statuses: number[] = [];
      while (performance.now() < end) statuses.push((await post(attack, agent)).status);
      agent.destroy();
      return statuses;
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const ordinary: Array<Promise<{ status: number; ms: number }>> = [];
    while (performance.now() < end) {
      ordinary.push(post(review(`ordinary-${ordinary.length}`), agent));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const answers = await Promise.all(ordinary);
    const attackStatuses = (await Promise.all(attackers)).flat();
    agent.destroy();
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200], "every ordinary review answered");
    const sorted = answers.map((a) => a.ms).sort((a, b) => a - b);
    const p99 = sorted[Math.floor(sorted.length * 0.99)]!;
    // The bench holds the 100 ms target (its own process, a quiet machine); here the attackers share the
    // test's event loop on a busy machine, and ordinary reviews must still stay far from the apiserver's 5 s.
    assert.ok(p99 < 2000, `ordinary p99 ${p99.toFixed(0)} ms under attack`);
    assert.ok(attackStatuses.includes(200), `the attackers' reviews are answered too, in turn: ${[...new Set(attackStatuses)]}`);
  });
});
