/**
 * `npm run bench:webhook`: AdmissionReviews for a realistic pod over HTTPS (keep-alive,
 * 32 connections) to the injector, beside a bare fastify HTTPS handler measured in the same
 * run on the same machine. Two loads each: as fast as 32 concurrent callers go (throughput),
 * and a fixed 500 requests/s (latency percentiles).
 *
 * Targets (issue 5): p99 ≤ 5 ms at 500 req/s; injector throughput ≥ 50 % of the bare handler.
 * Prints a table and writes bench/results/webhook.json; exits 0 whatever the numbers.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:https";
import { cpus } from "node:os";
import { parse } from "yaml";
import { planTls } from "../webhook/tls/certificates.ts";

const CONCURRENCY = 32;
const RATE = 500;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const tls = planTls(undefined, ["localhost"], new Date(), ["127.0.0.1"]).material;

const pod = parse(readFileSync(new URL("../test/fixtures/inject/deployment-scoped-policy.yaml", import.meta.url), "utf8"), { version: "1.1" }) as { spec: { template: object } };
const body = JSON.stringify({
  apiVersion: "admission.k8s.io/v1",
  kind: "AdmissionReview",
  request: {
    uid: "bench",
    kind: { group: "", version: "v1", kind: "Pod" },
    resource: { group: "", version: "v1", resource: "pods" },
    namespace: "payments",
    operation: "CREATE",
    object: { apiVersion: "v1", kind: "Pod", ...pod.spec.template, metadata: { generateName: "api-", namespace: "payments", labels: { app: "api" } } },
  },
});

async function startServer(mode: "injector" | "bare"): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [new URL("./webhook-server.ts", import.meta.url).pathname, mode], {
    env: { ...process.env, BENCH_KEY: tls.key, BENCH_CERT: tls.cert },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const [chunk] = (await once(child.stdout!, "data")) as [Buffer];
  return { child, port: Number(chunk.toString().trim()) };
}

function post(agent: Agent, port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: "POST", path: "/mutate", agent, ca: tls.caBundle, headers: { "content-type": "application/json" } }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** 32 callers, each sending its next request when the previous answer arrives. */
async function throughput(port: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await post(agent, port);
        done++;
      }
    }),
  );
  agent.destroy();
  return done / SECONDS;
}

/** Requests started at a fixed rate (at most 32 in flight), latency measured per request. */
async function latencyAtRate(port: number): Promise<{ p50: number; p99: number; max: number; sent: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const latencies: number[] = [];
  const total = RATE * SECONDS;
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    inFlight.push(post(agent, port).then((ms) => void latencies.push(ms)));
  }
  await Promise.all(inFlight);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? NaN, sent: latencies.length };
}

async function measure(mode: "injector" | "bare") {
  const { child, port } = await startServer(mode);
  try {
    for (let i = 0; i < 200; i++) await post(new Agent({ keepAlive: false }), port); // warm-up (JIT, TLS)
    return { throughput: await throughput(port), atRate: await latencyAtRate(port) };
  } finally {
    child.kill();
  }
}

const bare = await measure("bare");
const injector = await measure("injector");
const ratio = injector.throughput / bare.throughput;
const fmt = (n: number) => n.toFixed(2);
const pass = (ok: boolean) => (ok ? "PASS" : "FAIL");
console.log(`webhook benchmark: ${SECONDS} s per load, concurrency ${CONCURRENCY}, ${cpus().length} CPUs, ${Buffer.byteLength(body)}-byte AdmissionReview`);
console.log(`                       bare fastify   injector`);
console.log(`throughput (req/s)     ${bare.throughput.toFixed(0).padStart(12)}   ${injector.throughput.toFixed(0).padStart(8)}   ratio ${(ratio * 100).toFixed(0)} % (target ≥ 50 %: ${pass(ratio >= 0.5)})`);
console.log(`p50 at ${RATE}/s (ms)      ${fmt(bare.atRate.p50).padStart(12)}   ${fmt(injector.atRate.p50).padStart(8)}`);
console.log(`p99 at ${RATE}/s (ms)      ${fmt(bare.atRate.p99).padStart(12)}   ${fmt(injector.atRate.p99).padStart(8)}   (target ≤ 5 ms: ${pass(injector.atRate.p99 <= 5)})`);
console.log(`max at ${RATE}/s (ms)      ${fmt(bare.atRate.max).padStart(12)}   ${fmt(injector.atRate.max).padStart(8)}`);
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(
  new URL("./results/webhook.json", import.meta.url),
  `${JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, concurrency: CONCURRENCY, rate: RATE, bare, injector, throughputRatio: ratio }, null, 2)}\n`,
);
