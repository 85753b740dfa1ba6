/**
 * Main-thread handle on the review worker (review-worker-entry.ts): hands it a large
 * review's raw body, answers its questions about namespaces, and adds what it counted to
 * the server's metrics. Its heap is bounded: a review too large for it kills only the
 * worker (the review fails; the next one starts a new worker), never the injector.
 */
import { Worker } from "node:worker_threads";
import type { RuntimePolicy } from "../policies/schema.ts";
import type { AdmissionAnswer, AdmissionDeps } from "./admission.ts";
import type { MetricsSnapshot } from "./metrics.ts";
import type { ClusterDns } from "./pod-dns.ts";

export type WorkerRequest =
  | { type: "review"; id: number; body: Uint8Array; policies: readonly RuntimePolicy[]; clusterDns: ClusterDns | undefined }
  | { type: "labels"; ask: number; labels?: Record<string, string> | undefined; error?: string };

export type WorkerReply =
  | { type: "answer"; id: number; answer: AdmissionAnswer; metrics: MetricsSnapshot }
  | { type: "failed"; id: number; error: string }
  | { type: "labels"; ask: number; namespace: string };

// Runs from compiled .js and, in tests, straight from .ts source.
const entryUrl = new URL(`./review-worker-entry${import.meta.url.endsWith(".ts") ? ".ts" : ".js"}`, import.meta.url);
/** Room for one maximal (3 MiB) review parsed, copied and diffed, well under the injector's memory limit. */
const WORKER_HEAP = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 };

export class ReviewWorker {
  private readonly deps: AdmissionDeps;
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (answer: AdmissionAnswer) => void; reject: (err: Error) => void }>();

  constructor(deps: AdmissionDeps) {
    this.deps = deps;
  }

  admit(body: Buffer): Promise<AdmissionAnswer> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Handed over, not copied, when the body owns its memory (large bodies do); a slice
      // of a pooled buffer is copied first. Either way none of it stays on this thread.
      const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? new Uint8Array(body.buffer) : new Uint8Array(body);
      worker.postMessage({ type: "review", id, body: owned, policies: this.deps.policies(), clusterDns: this.deps.clusterDns() } satisfies WorkerRequest, [owned.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
  }

  private start(): Worker {
    const { config, failClosed } = this.deps;
    const worker = new Worker(entryUrl, { workerData: { config, failClosed }, resourceLimits: WORKER_HEAP });
    worker.unref();
    worker.on("message", (reply: WorkerReply) => {
      if (reply.type === "answer" || reply.type === "failed") {
        const pending = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (reply.type === "failed") return pending?.reject(new Error(reply.error));
        this.deps.metrics.absorb(reply.metrics);
        return pending?.resolve(reply.answer);
      }
      this.deps.namespaceLabels(reply.namespace).then(
        (labels) => worker.postMessage({ type: "labels", ask: reply.ask, labels } satisfies WorkerRequest),
        (err: unknown) => worker.postMessage({ type: "labels", ask: reply.ask, error: (err as Error).message } satisfies WorkerRequest),
      );
    });
    const fail = (why: string) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(new Error(why));
      this.pending.clear();
    };
    worker.on("error", (err) => fail(`review worker failed: ${err.message}`));
    worker.on("exit", (code) => fail(`review worker exited (${code})`));
    this.worker = worker;
    return worker;
  }
}
