/**
 * The admission server: fastify over HTTPS. `POST /mutate` answers AdmissionReviews of pods,
 * `POST /exec` those of kubectl exec, attach and debug (exec-admission.ts);
 * `/healthz` (the process is alive), `/readyz` (certificates loaded, policies synced, not
 * shutting down) and `/metrics` (Prometheus). Every error is a JSON body with a message.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Server } from "node:https";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import secureJson from "secure-json-parse";
import { admit, type AdmissionDeps } from "./admission.ts";
import { reviewExec, type ExecDeps } from "./exec-admission.ts";
import { DEFAULT_GATE_LIMITS, ReviewGate, type GateLimits, type Lane } from "./review-gate.ts";
import { ReviewWorker } from "./review-worker.ts";

export interface ServerOptions {
  key: string;
  cert: string;
  admission: AdmissionDeps;
  isReady: () => boolean;
  /** Largest accepted body; the apiserver's own limit for an object is 3 MiB. */
  bodyLimit?: number;
  /** Where unexpected server errors are reported. */
  log?: (message: string) => void;
  /** Which reviews are answered where, and how many at once (review-gate.ts). */
  gate?: GateLimits;
  /** Answers POST /exec; without it (no cluster access to read pods) the route is absent. */
  exec?: ExecDeps;
}

export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;
/** The apiserver's default webhook timeout: nobody waits for an answer longer. */
const REQUEST_TIMEOUT_MS = 10_000;

export type AdmissionServer = FastifyInstance<Server>;

/** The body length the client declared; undefined for a chunked (undeclared) body. */
function declaredLength(headers: IncomingHttpHeaders): number | undefined {
  const value = headers["content-length"];
  return value === undefined || !/^\d+$/.test(value) ? undefined : Number(value);
}

/** Fastify's own errors (bad JSON, wrong media type, too large) with messages a caller can act on. */
function errorMessage(error: FastifyError, bodyLimit: number): string {
  switch (error.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return `request body larger than ${bodyLimit} bytes`;
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return "expected Content-Type application/json";
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return "empty body: expected an AdmissionReview";
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return "body is not valid JSON: expected an AdmissionReview";
    default:
      return error.message;
  }
}

export function createAdmissionServer(options: ServerOptions): AdmissionServer {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = Fastify({
    https: {
      key: options.key,
      cert: options.cert,
      minVersion: "TLSv1.2",
      // A connection that never completes its TLS handshake (default: 120 s).
      handshakeTimeout: REQUEST_TIMEOUT_MS,
      // Node enforces requestTimeout on this interval (default: 30 s, so a stalled client held 40 s).
      connectionsCheckingInterval: 1_000,
    },
    bodyLimit,
    // A slow or stalled client cannot hold a connection longer than the apiserver's timeout.
    requestTimeout: REQUEST_TIMEOUT_MS,
    return503OnClosing: true,
  }) as unknown as AdmissionServer;

  // Node's requestTimeout stops at the headers once the request is handed over: a body
  // trickled a byte at a time held its connection for hours. Every exchange gets the
  // same deadline, body and answer included.
  app.addHook("onRequest", (request, reply, done) => {
    const timer = setTimeout(() => {
      if (!reply.sent) request.raw.socket.destroy();
    }, REQUEST_TIMEOUT_MS);
    reply.raw.once("close", () => clearTimeout(timer));
    done();
  });

  // Admission to the admission server, before any of the body is read: a declared size over
  // the limit is refused at once, large reviews wait their turn for the worker.
  const gate = new ReviewGate(options.gate ?? DEFAULT_GATE_LIMITS);
  const worker = new ReviewWorker(options.admission);
  const lanes = new WeakMap<FastifyRequest, Lane>();
  app.addHook("onRequest", (request, reply, done) => {
    if (request.method !== "POST") return done();
    const declared = declaredLength(request.headers);
    const { rejectedReviews } = options.admission.metrics;
    // Answered here, the request goes no further (done is not called).
    if (declared !== undefined && declared > bodyLimit) {
      rejectedReviews.inc({ reason: "too-large" });
      void reply.code(413).header("connection", "close").send({ error: errorMessage({ code: "FST_ERR_CTP_BODY_TOO_LARGE" } as FastifyError, bodyLimit) });
      return;
    }
    const admission = gate.enter(declared);
    if ("refused" in admission) {
      rejectedReviews.inc({ reason: "busy" });
      void reply.code(429).header("connection", "close").send({ error: `too many reviews at once (${admission.refused}); try again` });
      return;
    }
    lanes.set(request, admission.lane);
    reply.raw.once("close", admission.leave);
    done();
  });
  const defaultJson = app.getDefaultJsonParser("error", "error");
  app.addContentTypeParser("application/json", { parseAs: "buffer", bodyLimit }, (request, body, done) => {
    // Large reviews are parsed on the worker: the raw bytes go there.
    if (lanes.get(request) === "large") done(null, body);
    else defaultJson(request, body as Buffer & string, done);
  });
  app.addHook("onClose", async () => worker.close());

  app.setErrorHandler((error: FastifyError, _request, reply) => {
    const statusCode = error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (statusCode === 500) options.log?.(`internal error: ${error.stack ?? error.message}`);
    void reply.code(statusCode).send({ error: errorMessage(error, bodyLimit) });
  });
  app.setNotFoundHandler((request, reply) => {
    const paths = options.exec === undefined ? "the webhook path is POST /mutate" : "the webhook paths are POST /mutate and POST /exec";
    void reply.code(404).send({ error: `no route ${request.method} ${request.url}: ${paths}` });
  });

  app.post("/mutate", async (request, reply) => {
    if (!Buffer.isBuffer(request.body)) {
      const body: unknown = request.body;
      const answer = lanes.get(request) === "medium" ? await gate.inMediumTurn(() => admit(body, options.admission)) : await admit(body, options.admission);
      return reply.code(answer.statusCode).send(answer.body);
    }
    try {
      const answer = await worker.admit(request.body);
      return await reply.code(answer.statusCode).send(answer.body);
    } catch (err) {
      // No uid to answer with: the apiserver applies the webhook's failurePolicy.
      options.admission.metrics.requests.inc({ outcome: "error" });
      return reply.code(500).send({ error: `the review could not be processed: ${(err as Error).message}` });
    }
  });
  const { exec } = options;
  if (exec !== undefined) {
    app.post("/exec", async (request, reply) => {
      let body: unknown = request.body;
      if (Buffer.isBuffer(body)) {
        // Exec reviews are small; a large one (a big pod's ephemeral containers) waits its turn on the main thread.
        const bytes = body;
        try {
          body = await gate.inMediumTurn(async () => secureJson.parse(bytes, undefined, { protoAction: "error", constructorAction: "error" }) as unknown);
        } catch {
          return reply.code(400).send({ error: "body is not valid JSON: expected an AdmissionReview" });
        }
      }
      const answer = await reviewExec(body, exec);
      return reply.code(answer.statusCode).send(answer.body);
    });
  }
  app.get("/healthz", async () => ({ status: "ok" }));
  app.get("/readyz", async (_request, reply) => (options.isReady() ? { status: "ready" } : reply.code(503).send({ status: "not ready" })));
  app.get("/metrics", async (_request, reply) => reply.type("text/plain; version=0.0.4").send(options.admission.metrics.render()));
  return app;
}

/** Serves a new certificate to new connections (rotation, or a changed cert directory). */
export function replaceCertificate(app: AdmissionServer, key: string, cert: string): void {
  app.server.setSecureContext({ key, cert, minVersion: "TLSv1.2" });
}
