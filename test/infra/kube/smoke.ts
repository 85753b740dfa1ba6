/**
 * Smoke check of the real control plane (not part of the mocha run):
 *   PATH=node_modules/.bin:$PATH node test/infra/kube/smoke.ts
 * Builds or reuses the binaries, starts etcd + kube-apiserver, then: kubectl version, a
 * namespace and a Pod (it stays Pending: there is no kubelet), kubectl apply -k, and a
 * MutatingWebhookConfiguration whose clientConfig.url is a loopback HTTPS server here, to
 * show the real admission chain calls it. Exits non-zero on the first failed check.
 */
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { buildKube, startControlPlane, type ControlPlane } from "./control-plane.ts";

const step = (what: string, started: number) => console.log(`[${((Date.now() - started) / 1000).toFixed(2)} s] ${what}`);

async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const result = await cp.kubectl(args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

const pod = (name: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: "smoke", labels: { app: "smoke" } },
  spec: { containers: [{ name: "app", image: "busybox:stable", command: ["sleep", "3600"] }] },
});

let started = Date.now();
const binDir = await buildKube();
step(`binaries in ${binDir}`, started);

started = Date.now();
const cp = await startControlPlane({ binDir });
step(`control plane up at ${cp.server} (${JSON.stringify(cp.startup)} ms)`, started);
try {
  started = Date.now();
  console.log((await kubectl(cp, ["version"])).trim());
  step("kubectl version", started);

  started = Date.now();
  await kubectl(cp, ["create", "namespace", "smoke"]);
  await kubectl(cp, ["label", "namespace", "smoke", "smoke-webhook=enabled"]);
  await kubectl(cp, ["apply", "-f", "-"], JSON.stringify(pod("plain")));
  const read = JSON.parse(await kubectl(cp, ["get", "pod", "plain", "-n", "smoke", "-o", "json"])) as PodJson;
  console.log(`pod ${read.metadata.namespace}/${read.metadata.name}: phase ${read.status?.phase}, uid ${read.metadata.uid}`);
  step("namespace + pod created and read back", started);

  started = Date.now();
  const kustomization = await mkdtemp(join(tmpdir(), "kustomize-"));
  await writeFile(
    join(kustomization, "kustomization.yaml"),
    JSON.stringify({ namespace: "smoke", configMapGenerator: [{ name: "generated", literals: ["key=value"] }] }),
  );
  console.log((await kubectl(cp, ["apply", "-k", kustomization])).trim());
  await rm(kustomization, { recursive: true });
  step("kubectl apply -k", started);

  started = Date.now();
  await checkWebhook(cp);
  step("mutating webhook at https://127.0.0.1 called by the apiserver", started);
} catch (error) {
  console.error(`${(error as Error).message}\n--- ${cp.logs.apiserver} (tail)`);
  console.error((await readFile(cp.logs.apiserver, "utf8")).split("\n").slice(-30).join("\n"));
  process.exitCode = 1;
} finally {
  started = Date.now();
  await cp.stop();
  step("stopped", started);
}

interface PodJson {
  metadata: { name: string; namespace: string; uid: string; labels?: Record<string, string> };
  status?: { phase?: string };
}

/** A loopback HTTPS webhook that labels Pods; the pod created afterwards must carry it. */
async function checkWebhook(cp: ControlPlane): Promise<void> {
  const { certFile, keyFile } = await cp.issueCertificate("smoke-webhook", { ipAddresses: ["127.0.0.1"] });
  let calls = 0;
  const server = createServer({ cert: await readFile(certFile), key: await readFile(keyFile) }, (req, res) => {
    let body = "";
    req.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
    req.on("end", () => {
      calls++;
      const review = JSON.parse(body) as { request: { uid: string } };
      const patch = [{ op: "add", path: "/metadata/labels/smoke~1mutated", value: "true" }];
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          apiVersion: "admission.k8s.io/v1",
          kind: "AdmissionReview",
          response: { uid: review.request.uid, allowed: true, patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64") },
        }),
      );
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/mutate`;
    const configuration = {
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: "MutatingWebhookConfiguration",
      metadata: { name: "smoke" },
      webhooks: [
        {
          name: "smoke.microenforcer.dev",
          clientConfig: { url, caBundle: (await readFile(cp.caFile)).toString("base64") },
          rules: [{ apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"] }],
          namespaceSelector: { matchLabels: { "smoke-webhook": "enabled" } },
          admissionReviewVersions: ["v1"],
          sideEffects: "None",
          failurePolicy: "Fail",
        },
      ],
    };
    await kubectl(cp, ["apply", "-f", "-"], JSON.stringify(configuration));
    // The apiserver picks up webhook configurations from an informer, a moment after the
    // write: poll with server-side dry runs (they run admission, store nothing).
    const deadline = Date.now() + 10000;
    for (;;) {
      const dryRun = JSON.parse(await kubectl(cp, ["create", "--dry-run=server", "-o", "json", "-f", "-"], JSON.stringify(pod("mutated")))) as PodJson;
      if (dryRun.metadata.labels?.["smoke/mutated"] === "true") break;
      if (Date.now() > deadline) throw new Error("the webhook was never called");
      await sleep(100);
    }
    await kubectl(cp, ["create", "-f", "-"], JSON.stringify(pod("mutated")));
    const read = JSON.parse(await kubectl(cp, ["get", "pod", "mutated", "-n", "smoke", "-o", "json"])) as PodJson;
    if (read.metadata.labels?.["smoke/mutated"] !== "true") throw new Error(`pod not mutated: ${JSON.stringify(read.metadata)}`);
    console.log(`webhook ${url} called ${calls} times; pod smoke/mutated labels ${JSON.stringify(read.metadata.labels)}`);
  } finally {
    server.close();
  }
}
