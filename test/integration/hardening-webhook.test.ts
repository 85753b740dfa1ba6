/**
 * Hardening of the admission server (issue 7): the real fastify HTTPS server with
 * certificates from the injector's own TLS code, fed random and mutated AdmissionReviews
 * (fast-check), concurrent load, slow clients, oversize bodies and old TLS versions. Every
 * answer must be a well-formed AdmissionReview echoing the uid or a 4xx with a message:
 * never a 5xx, never a dropped connection; and a valid request is still answered right after.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { connect as netConnect, type AddressInfo, type Socket } from "node:net";
import { connect, createServer as createTlsServer, type ConnectionOptions, type TLSSocket } from "node:tls";
import fc from "fast-check";
import { parse } from "yaml";
import type { AdmissionDeps } from "../../webhook/admission.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { createMetrics } from "../../webhook/metrics.ts";
import { createAdmissionServer, type AdmissionServer } from "../../webhook/server.ts";
import { planTls } from "../../webhook/tls/certificates.ts";

const BODY_LIMIT = 256 * 1024;
const UID = "6f9d2c4e-1111-2222-3333-444455556666";
const pod = parse(readFileSync(new URL("../fixtures/inject/plain-pod.yaml", import.meta.url), "utf8"), { version: "1.1" }) as Record<string, unknown>;

function validReview(uid = UID, object: unknown = pod): Record<string, unknown> {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind: { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      namespace: "shop",
      operation: "CREATE",
      object: structuredClone(object),
    },
  };
}

interface Reply {
  status: number;
  body: string;
}

/** A value nested `depth` levels deep, built without recursion. */
function nested(depth: number, kind: "array" | "object"): unknown {
  let value: unknown = "leaf";
  for (let i = 0; i < depth; i++) value = kind === "array" ? [value] : { n: value };
  return value;
}

/** Sets (or, with `undefined`, deletes) the value at `path` inside `root` (in place), creating objects on the way. */
function mutate(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let here: Record<string, unknown> = root;
  for (const key of path.slice(0, -1)) {
    const next = here[key];
    if (next === null || typeof next !== "object") here[key] = {};
    here = here[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1]!;
  if (value === undefined) delete here[last];
  else here[last] = value;
}

/** Every path to an object member in a JSON value (arrays by index), so mutations hit real fields. */
function paths(value: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) {
      out.push([...prefix, key]);
      paths(child, [...prefix, key], out);
    }
  }
  return out;
}

describe("admission server hardening (fuzzing, load, slow clients, TLS versions)", function () {
  this.timeout(60_000);
  const tls = planTls(undefined, ["localhost"], new Date(), ["127.0.0.1"]).material;
  const serverLog: string[] = [];
  let server: AdmissionServer;
  let port: number;
  // Keep-alive: a dropped connection shows up as a request error, which fails the property.
  const agent = new Agent({ keepAlive: true, maxSockets: 32, ca: tls.caBundle });
  const deps: AdmissionDeps = {
    config: defaultInjectorConfig(),
    policies: () => [],
    namespaceLabels: async () => ({ "microenforcer.dev/injection": "enabled" }),
    clusterDns: () => undefined,
    failClosed: false,
    metrics: createMetrics(),
  };

  function post(body: string | Buffer, timeoutMs = 15_000): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = request({ host: "localhost", port, method: "POST", path: "/mutate", agent, headers: { "content-type": "application/json" } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  }

  /** The property every answer must have; `uid` is the request's uid when it was a non-empty string. */
  function checkAnswer(reply: Reply, uid: unknown): void {
    assert.ok(reply.status === 200 || (reply.status >= 400 && reply.status < 500), `status ${reply.status}: ${reply.body.slice(0, 300)}`);
    const json = JSON.parse(reply.body) as Record<string, unknown>;
    if (reply.status === 200) {
      assert.equal(json.apiVersion, "admission.k8s.io/v1");
      assert.equal(json.kind, "AdmissionReview");
      const response = json.response as Record<string, unknown>;
      assert.equal(typeof uid === "string" && uid !== "", true, `a 200 only for a request with a uid, got ${reply.body.slice(0, 200)}`);
      assert.equal(response.uid, uid);
      assert.equal(typeof response.allowed, "boolean");
      if (response.patch !== undefined) {
        assert.equal(response.patchType, "JSONPatch");
        assert.ok(Array.isArray(JSON.parse(Buffer.from(String(response.patch), "base64").toString("utf8"))));
      }
    } else {
      assert.equal(typeof json.error, "string", reply.body.slice(0, 300));
      assert.notEqual(json.error, "");
    }
  }

  async function assertStillInjects(): Promise<void> {
    const reply = await post(JSON.stringify(validReview("after-the-storm")));
    assert.equal(reply.status, 200, reply.body);
    const response = (JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; patchType?: string } }).response;
    assert.deepEqual([response.uid, response.allowed, response.patchType], ["after-the-storm", true, "JSONPatch"]);
  }

  before(async () => {
    server = createAdmissionServer({
      key: tls.key,
      cert: tls.cert,
      admission: deps,
      isReady: () => true,
      bodyLimit: BODY_LIMIT,
      log: (message) => serverLog.push(message),
    });
    await server.listen({ host: "127.0.0.1", port: 0 });
    port = (server.server.address() as AddressInfo).port;
  });
  after(async () => {
    agent.destroy();
    await server.close();
  });
  afterEach(() => {
    assert.deepEqual(serverLog.splice(0), [], "the server reported no internal error");
  });

  it("answers random JSON bodies with a 4xx and a message, never a 5xx or a dropped connection", async () => {
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 6 }), async (value) => {
        const reply = await post(JSON.stringify(value) ?? "null");
        checkAnswer(reply, undefined);
      }),
      { numRuns: 300, interruptAfterTimeLimit: 15_000 },
    );
    await assertStillInjects();
  });

  it("answers mutated valid reviews (wrong types, missing fields, huge strings, deep nesting, other kinds) with an AdmissionReview echoing the uid, or a 4xx", async () => {
    const base = validReview();
    const fields = paths(base);
    const kinds = ["Pod", "Deployment", "Service", "", "pod", "Pod\u0000"];
    // Huge and deep values are described, and built inside the property, so that fast-check's
    // own report of a counterexample stays small (it would overflow the stack printing them).
    type Replacement = { value: unknown } | { huge: number } | { deep: number; shape: "array" | "object" };
    // A value is copied in: fast-check hands the same instance to many runs (constantFrom's
    // `{}`, shrinking), and a later mutation through it would change it for all of them.
    const build = (r: Replacement): unknown => ("value" in r ? structuredClone(r.value) : "huge" in r ? "x".repeat(r.huge * 1024 - 7) : nested(r.deep, r.shape));
    const replacement: fc.Arbitrary<Replacement> = fc.oneof(
      fc.constant({ value: undefined }), // a missing field
      fc.jsonValue({ maxDepth: 3 }).map((value) => ({ value })), // any other type
      fc.constantFrom(null, true, 0, -1, 1e308, "", [], {}).map((value) => ({ value })),
      fc.integer({ min: 1, max: 300 }).map((huge) => ({ huge })), // a huge string (some above the body limit)
      // Deeper than ~4 000 levels the server fails (issue 7 report): kept out of this committed run.
      fc.record({ deep: fc.integer({ min: 1, max: 2_000 }), shape: fc.constantFrom("array" as const, "object" as const) }), // deep nesting
      fc.string({ unit: "binary", maxLength: 64 }).map((value) => ({ value })),
    );
    const mutation: fc.Arbitrary<[readonly string[], Replacement]> = fc.oneof(
      fc.tuple(fc.constantFrom(...fields), replacement),
      fc.tuple(fc.constant(["request", "kind", "kind"]), fc.constantFrom(...kinds).map((value) => ({ value }))),
      fc.tuple(
        fc.constantFrom(["request", "operation"], ["request", "subResource"], ["request", "dryRun"]),
        fc.jsonValue({ maxDepth: 2 }).map((value) => ({ value })),
      ),
    );
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        const body = structuredClone(base);
        for (const [path, value] of mutations) mutate(body, path, build(value));
        const text = JSON.stringify(body);
        const reply = await post(text);
        answered++;
        if (Buffer.byteLength(text) > BODY_LIMIT) {
          assert.equal(reply.status, 413, reply.body.slice(0, 300));
          return;
        }
        const request = (body as { request?: unknown }).request;
        const uid = request !== null && typeof request === "object" && !Array.isArray(request) ? (request as { uid?: unknown }).uid : undefined;
        checkAnswer(reply, uid);
      }),
      { numRuns: 400, interruptAfterTimeLimit: 25_000 },
    );
    assert.ok(answered >= 50, `only ${answered} mutated reviews answered within the time limit`);
    await assertStillInjects();
  });

  it("refuses a pod nested deep enough to crash an injector, rather than admit it without the sidecar", async () => {
    // Spliced in as text: building or cloning it as a value would overflow this test's stack.
    const review = validReview("deep-pod") as { request: { object: { metadata: Record<string, unknown> } } };
    review.request.object.metadata.managedFields = [{ manager: "kubectl", fieldsV1: "DEEP" }];
    const deep = `${'{"n":'.repeat(5_000)}"leaf"${"}".repeat(5_000)}`;
    const reply = await post(JSON.stringify(review).replace('"DEEP"', deep));
    assert.equal(reply.status, 200, reply.body.slice(0, 300));
    const response = (JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; status?: { code: number; message: string } } }).response;
    assert.deepEqual([response.uid, response.allowed, response.status?.code], ["deep-pod", false, 400]);
    assert.match(response.status!.message, /nested more than \d+ levels deep/);
    const deepHeader = await post(`{"apiVersion":${"[".repeat(20_000)}${"]".repeat(20_000)},"kind":"AdmissionReview"}`);
    assert.equal(deepHeader.status, 400, deepHeader.body.slice(0, 300));
    await assertStillInjects();
  });

  it("answers 200 reviews sent 32 at a time, each with its own uid and patch", async () => {
    const total = 200;
    const inFlight = 32;
    const uids = Array.from({ length: total }, (_, i) => `load-${i}`);
    const answers = new Map<string, Reply>();
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (next < total) {
          const uid = uids[next++]!;
          answers.set(uid, await post(JSON.stringify(validReview(uid))));
        }
      }),
    );
    assert.equal(answers.size, total);
    for (const [uid, reply] of answers) {
      assert.equal(reply.status, 200, reply.body);
      const response = (JSON.parse(reply.body) as { response: { uid: string; allowed: boolean; patchType?: string } }).response;
      assert.deepEqual([response.uid, response.allowed, response.patchType], [uid, true, "JSONPatch"]);
    }
    assert.ok(Date.now() - started < 30_000, `200 reviews took ${Date.now() - started} ms`);
  });

  it("answers an oversize body with 413 and a message, and a valid one right after", async () => {
    const review = validReview();
    (review.request as Record<string, unknown>).object = { ...pod, padding: "y".repeat(BODY_LIMIT) };
    const reply = await post(JSON.stringify(review));
    assert.equal(reply.status, 413);
    assert.match(String((JSON.parse(reply.body) as { error: unknown }).error), new RegExp(`request body larger than ${BODY_LIMIT} bytes`));
    await assertStillInjects();
  });

  /** A raw TLS connection to the server, verified against the injector's CA. */
  function open(options: Partial<ConnectionOptions> = {}): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, ca: tls.caBundle, servername: "localhost", ...options }, () => resolve(socket));
      socket.once("error", reject);
    });
  }

  it("serves others while slow clients trickle or send nothing, and cuts every one off at the 10 s request timeout", async function () {
    const started = Date.now();
    const closedAfter = (socket: Socket): Promise<{ ms: number; data: string }> =>
      new Promise((resolve) => {
        let data = "";
        socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
        socket.on("error", () => {});
        socket.on("close", () => resolve({ ms: Date.now() - started, data }));
      });
    const timers: NodeJS.Timeout[] = [];
    const trickle = (socket: TLSSocket, chunk: string): void => {
      // One chunk every 200 ms, for ever: only the server can end this.
      timers.push(setInterval(() => socket.writable && socket.write(chunk), 200));
    };
    // Headers then a body trickled a byte at a time (a 100 000-byte body: 5.5 hours).
    const bodyTricklers = await Promise.all(Array.from({ length: 8 }, () => open()));
    for (const socket of bodyTricklers) {
      socket.write(`POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`);
      trickle(socket, " ");
    }
    // Headers that never end, TLS connections that never send a request, and TCP
    // connections that never start TLS.
    const headerTricklers = await Promise.all(Array.from({ length: 8 }, () => open()));
    for (const socket of headerTricklers) {
      socket.write("POST /mutate HTTP/1.1\r\n");
      trickle(socket, "X-Slow: 1\r\n");
    }
    const idle = await Promise.all(Array.from({ length: 8 }, () => open()));
    const plain = await Promise.all(
      Array.from({ length: 8 }, () => new Promise<Socket>((resolve, reject) => {
        const socket = netConnect({ host: "127.0.0.1", port }, () => resolve(socket));
        socket.once("error", reject);
      })),
    );
    const cutOff = [...bodyTricklers, ...headerTricklers, ...idle, ...plain].map(closedAfter);
    try {
      // Others are served meanwhile, promptly.
      for (let i = 0; i < 5; i++) {
        const t = Date.now();
        await assertStillInjects();
        assert.ok(Date.now() - t < 2_000, `a valid review took ${Date.now() - t} ms beside 32 slow clients`);
      }
      // 10 s, checked every second: each one is gone within a few seconds of its deadline.
      const results = await Promise.race([
        Promise.all(cutOff),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error("slow clients were not cut off within 20 s")), 20_000)),
      ]);
      // Bodies of 100 000 bytes take the large-review lane, which holds 4: the others are turned away at once.
      const turnedAway = results.filter(({ data }) => /^HTTP\/1\.1 429 /.test(data));
      assert.equal(turnedAway.length, 4, "body tricklers beyond the large-review lane's 4");
      for (const { ms } of turnedAway) assert.ok(ms < 2_000, `turned away after ${ms} ms`);
      for (const { ms, data } of results.filter((r) => !turnedAway.includes(r))) {
        assert.ok(ms >= 9_000 && ms <= 16_000, `cut off after ${ms} ms, not at the 10 s request timeout`);
        assert.ok(data === "" || /^HTTP\/1\.1 408 /.test(data), `a stalled client got ${JSON.stringify(data.slice(0, 200))}`);
      }
      await assertStillInjects();
    } finally {
      for (const timer of timers) clearInterval(timer);
      for (const socket of [...bodyTricklers, ...headerTricklers, ...idle, ...plain]) socket.destroy();
    }
  });

  const offered = (version: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3"): Partial<ConnectionOptions> => ({
    minVersion: version,
    maxVersion: version,
    // OpenSSL's default security level no longer lets a client offer TLS 1.0/1.1 at all.
    ciphers: "DEFAULT@SECLEVEL=0",
  });

  it("refuses TLS 1.0 and 1.1 (which this client can still speak) and accepts TLS 1.2 and 1.3", async () => {
    // A control server that accepts every version proves the client really offers 1.0 and 1.1.
    const control = createTlsServer({ key: tls.key, cert: tls.cert, minVersion: "TLSv1", ciphers: "DEFAULT@SECLEVEL=0" }, (socket) => socket.end());
    await new Promise<void>((resolve) => control.listen(0, "127.0.0.1", resolve));
    const controlPort = (control.address() as AddressInfo).port;
    try {
      for (const version of ["TLSv1", "TLSv1.1"] as const) {
        const socket = await new Promise<TLSSocket>((resolve, reject) => {
          const s = connect({ host: "127.0.0.1", port: controlPort, ca: tls.caBundle, servername: "localhost", ...offered(version) }, () => resolve(s));
          s.once("error", reject);
        });
        assert.equal(socket.getProtocol(), version, "the control server negotiated the old version");
        socket.destroy();
        await assert.rejects(open(offered(version)), (error: NodeJS.ErrnoException) => {
          assert.match(`${error.code} ${error.message}`, /PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|WRONG_VERSION|protocol version/i);
          return true;
        });
      }
    } finally {
      control.close();
    }
    for (const version of ["TLSv1.2", "TLSv1.3"] as const) {
      const socket = await open({ minVersion: version, maxVersion: version });
      assert.equal(socket.getProtocol(), version);
      socket.destroy();
    }
    await assertStillInjects();
  });
});
