/**
 * The review worker's thread: large AdmissionReviews parsed and answered here, off the main
 * thread (review-worker.ts). What it needs from the cluster it asks the main thread for.
 */
import { parentPort, workerData } from "node:worker_threads";
import secureJson from "secure-json-parse";
import type { RuntimePolicy } from "../policies/schema.ts";
import { admit, type AdmissionAnswer } from "./admission.ts";
import type { InjectorConfig } from "./config.ts";
import { jsonValuesMoreThan } from "./json.ts";
import { createMetrics } from "./metrics.ts";
import type { ClusterDns } from "./pod-dns.ts";
import type { WorkerReply, WorkerRequest } from "./review-worker.ts";

/**
 * A real pod's review, managedFields included, holds a few thousand JSON values; a review
 * holding more was made to keep the injector busy (each costs microseconds to parse, copy
 * and diff), and is turned away before it is parsed.
 */
export const MAX_REVIEW_VALUES = 100_000;

const { config, failClosed } = workerData as { config: InjectorConfig; failClosed: boolean };
const port = parentPort!;
const pendingLabels = new Map<number, (labels: Record<string, string> | undefined | Error) => void>();
let nextAsk = 0;
let queue: Promise<void> = Promise.resolve();

function namespaceLabels(namespace: string): Promise<Record<string, string> | undefined> {
  const ask = nextAsk++;
  return new Promise((resolve, reject) => {
    pendingLabels.set(ask, (answer) => (answer instanceof Error ? reject(answer) : resolve(answer)));
    port.postMessage({ type: "labels", ask, namespace } satisfies WorkerReply);
  });
}

async function review(id: number, body: Uint8Array, policies: readonly RuntimePolicy[], clusterDns: ClusterDns | undefined): Promise<void> {
  const metrics = createMetrics();
  let answer: AdmissionAnswer;
  if (jsonValuesMoreThan(body, MAX_REVIEW_VALUES)) {
    metrics.rejectedReviews.inc({ reason: "too-many-values" });
    answer = { statusCode: 400, body: { error: `the review holds more than ${MAX_REVIEW_VALUES} JSON values; no pod does` } };
    port.postMessage({ type: "answer", id, answer, metrics: metrics.snapshot() } satisfies WorkerReply);
    return;
  }
  let parsed: unknown;
  try {
    // The same prototype-poisoning rules as the server's own JSON parser.
    parsed = body.length === 0 ? undefined : secureJson.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength), undefined, { protoAction: "error", constructorAction: "error" });
  } catch {
    parsed = Symbol.for("invalid");
  }
  if (typeof parsed === "symbol" || parsed === undefined) {
    answer = { statusCode: 400, body: { error: parsed === undefined ? "empty body: expected an AdmissionReview" : "body is not valid JSON: expected an AdmissionReview" } };
  } else {
    answer = await admit(parsed, { config, failClosed, policies: () => policies, namespaceLabels, clusterDns: () => clusterDns, metrics });
  }
  port.postMessage({ type: "answer", id, answer, metrics: metrics.snapshot() } satisfies WorkerReply);
}

port.on("message", (message: WorkerRequest) => {
  if (message.type === "labels") {
    pendingLabels.get(message.ask)?.(message.error !== undefined ? new Error(message.error) : message.labels);
    pendingLabels.delete(message.ask);
    return;
  }
  // One review at a time: two maximal ones parsed side by side would double the heap they need.
  const { id } = message;
  queue = queue
    .then(() => review(id, message.body, message.policies, message.clusterDns))
    .catch((err: unknown) => port.postMessage({ type: "failed", id, error: (err as Error).message } satisfies WorkerReply));
});
