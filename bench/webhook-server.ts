/**
 * The server side of `npm run bench:webhook`, in its own process so it does not share an
 * event loop with the load generator. `injector`: the real admission server; `bare`: a
 * fastify HTTPS handler that parses the same body and answers a fixed AdmissionReview.
 * Prints the port, then serves until killed.
 */
import type { AddressInfo } from "node:net";
import Fastify from "fastify";
import { defaultInjectorConfig } from "../webhook/config.ts";
import { createMetrics } from "../webhook/metrics.ts";
import { createAdmissionServer } from "../webhook/server.ts";

const [mode, key, cert] = [process.argv[2], process.env.BENCH_KEY ?? "", process.env.BENCH_CERT ?? ""];

const server =
  mode === "injector"
    ? createAdmissionServer({
        key,
        cert,
        isReady: () => true,
        admission: { config: defaultInjectorConfig(), policies: () => [], namespaceLabels: async () => ({ "microenforcer.dev/injection": "enabled" }), clusterDns: () => undefined, failClosed: false, metrics: createMetrics() },
      })
    : Fastify({ https: { key, cert }, bodyLimit: 3 * 1024 * 1024 }).post("/mutate", async (request) => {
        const uid = (request.body as { request?: { uid?: string } }).request?.uid;
        return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid, allowed: true } };
      });

await server.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`${(server.server.address() as AddressInfo).port}\n`);
