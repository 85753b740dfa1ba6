/**
 * The injector against a real kube-apiserver + etcd: the apiserver's validation and Pod
 * Security admission judge the golden outputs, and the real admission chain calls the
 * `microenforcer webhook` process, which bootstraps its TLS Secret, patches its caBundle
 * (again after a reset), resolves RuntimePolicies and updates running pods' policies.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { KubeConfig } from "@kubernetes/client-node";
import { parse } from "yaml";
import { ensureTlsSecrets } from "../../webhook/cluster/tls-secret.ts";
import { splitPem } from "../../webhook/tls/certificates.ts";
import { startControlPlane, type ControlPlane } from "../infra/kube/control-plane.ts";
import { cli } from "./pid-namespace.ts";

const FIXTURES = new URL("../fixtures/inject/", import.meta.url);
const CRD = new URL("../../manifests/crd/runtimepolicies.microenforcer.dev.yaml", import.meta.url).pathname;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMillis = 20000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The namespaces the golden fixtures use, with the labels their `# args:` give them. */
function fixtureNamespaces(): Map<string, Record<string, string>> {
  const namespaces = new Map<string, Record<string, string>>();
  for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith(".yaml") && !f.endsWith(".injected.yaml"))) {
    const text = readFileSync(new URL(file, FIXTURES), "utf8");
    const labelsArg = /--namespace-labels (\S+)/.exec(text)?.[1];
    const labels = Object.fromEntries((labelsArg?.split(",") ?? []).map((kv) => kv.split("=") as [string, string]));
    for (const ns of text.matchAll(/^\s+namespace: (\S+)$/gm)) namespaces.set(ns[1]!, { ...namespaces.get(ns[1]!), ...labels });
  }
  namespaces.delete("kube-system");
  return namespaces;
}

const OWN_IMAGE = "registry.example/security/microenforcer:2.0.1";

describe("injector against a real kube-apiserver", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let kc: KubeConfig;

  const kubectl = async (args: string[], input?: string) => {
    const result = await cp.kubectl(args, { input });
    assert.equal(result.code, 0, `kubectl ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  };
  const getJson = async (args: string[]) => JSON.parse(await kubectl([...args, "-o", "json"])) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  before(async () => {
    cp = await startControlPlane();
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    await kubectl(["apply", "-f", CRD]);
    await kubectl(["wait", "--for=condition=established", "crd/runtimepolicies.microenforcer.dev", "--timeout=60s"]);
    await kubectl(["create", "namespace", "microenforcer-system"]);
  });
  after(async () => cp?.stop());

  it("accepts every golden output: apiserver validation and Pod Security admission", async () => {
    for (const [name, labels] of fixtureNamespaces()) {
      await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels } }));
    }
    const outputs = readdirSync(FIXTURES).filter((f) => f.endsWith(".injected.yaml"));
    assert.ok(outputs.length >= 20);
    for (const file of outputs) {
      // Strict field validation would refuse the fields from the future that fixture keeps on purpose.
      const validate = file.startsWith("unknown-fields") ? ["--validate=ignore"] : [];
      const result = await cp.kubectl(["create", "--dry-run=server", ...validate, "-f", new URL(file, FIXTURES).pathname]);
      assert.equal(result.code, 0, `${file}: ${result.stderr}`);
      assert.doesNotMatch(result.stderr, /would violate PodSecurity/, file);
    }
  });

  it("accepts the kustomize manifests, the examples and the network policy (server-side dry run)", async () => {
    const root = new URL("../../manifests/", import.meta.url).pathname;
    await kubectl(["apply", "--dry-run=server", "-k", root]);
    await kubectl(["apply", "--dry-run=server", "-k", `${root}examples`]);
    await kubectl(["apply", "--dry-run=server", "-k", `${root}network-policy`]);
  });

  it("shares one CA between replicas that start together, its key in a Secret of its own", async () => {
    const refs = { namespace: "microenforcer-system", serving: "race-tls", ca: "race-ca" };
    const plans = await Promise.all([1, 2, 3].map(() => ensureTlsSecrets(kc, refs, ["microenforcer-injector.microenforcer-system.svc"])));
    assert.equal(new Set(plans.map((p) => p.material.caBundle)).size, 1);
    assert.deepEqual(plans.map((p) => p.change).filter((c) => c !== "").length, 1, "exactly one replica created the Secrets");
    const serving = await getJson(["-n", refs.namespace, "get", "secret", refs.serving]);
    const ca = await getJson(["-n", refs.namespace, "get", "secret", refs.ca]);
    assert.deepEqual(Object.keys(serving.data).sort(), ["ca.crt", "tls.crt", "tls.key"], "no CA key beside the serving key");
    assert.deepEqual(Object.keys(ca.data).sort(), ["ca.crt", "ca.key"]);
    assert.equal(splitPem(Buffer.from(serving.data["ca.crt"], "base64").toString()).length, 1);
    assert.equal(serving.data["ca.crt"], ca.data["ca.crt"]);
  });

  it("moves a CA key kept beside the serving key (before the split) into its own Secret", async () => {
    const refs = { namespace: "microenforcer-system", serving: "old-tls", ca: "old-ca" };
    const first = await ensureTlsSecrets(kc, { namespace: refs.namespace, serving: "scratch-tls", ca: "scratch-ca" }, ["x.svc"]);
    const m = first.material;
    const b64 = (t: string) => Buffer.from(t).toString("base64");
    const old = { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name: refs.serving, namespace: refs.namespace }, data: { "ca.crt": b64(m.caBundle), "ca.key": b64(m.caKey), "tls.crt": b64(m.cert), "tls.key": b64(m.key) } };
    await kubectl(["create", "-f", "-"], JSON.stringify(old));
    const plan = await ensureTlsSecrets(kc, refs, ["x.svc"]);
    assert.equal(plan.material.caKey, m.caKey, "the same CA");
    const serving = await getJson(["-n", refs.namespace, "get", "secret", refs.serving]);
    assert.equal(serving.data["ca.key"], undefined);
    assert.equal((await getJson(["-n", refs.namespace, "get", "secret", refs.ca])).data["ca.key"], b64(m.caKey));
  });

  describe("the webhook process in the admission chain", () => {
    let webhook: ChildProcess;
    let stderr = "";
    let port: number;

    before(async () => {
      port = await freePort();
      // The injector's own pod as the Deployment would make it, its image set by an admin
      // (kustomize images:, a registry mirror): the sidecars must get that image.
      const self = { apiVersion: "v1", kind: "Pod", metadata: { name: "microenforcer-injector-7d9f", namespace: "microenforcer-system" }, spec: { containers: [{ name: "injector", image: OWN_IMAGE }] } };
      await kubectl(["create", "-f", "-"], JSON.stringify(self));
      webhook = spawn(
        process.execPath,
        [cli, "webhook", "--kubeconfig", cp.kubeconfigPath, "--self-signed", "--host", "127.0.0.1", "--port", String(port), "--namespace", "microenforcer-system", "--tls-san", "127.0.0.1"],
        { env: { PATH: process.env.PATH ?? "", POD_NAME: self.metadata.name, POD_NAMESPACE: self.metadata.namespace }, stdio: ["ignore", "ignore", "pipe"] },
      );
      webhook.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      await eventually("the webhook to serve", async () => (/serving on/.test(stderr) ? true : webhook.exitCode !== null ? assert.fail(stderr) : undefined));
      await kubectl(["apply", "-f", "-"], JSON.stringify(webhookConfiguration(port)));
      await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "apps", labels: { "microenforcer.dev/injection": "enabled", team: "apps" } } }));
      await kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: "tenant", labels: { "microenforcer.dev/injection": "required" } } }));
      await kubectl(["apply", "-f", "-"], JSON.stringify(policy("audit")));
    });
    after(async () => {
      if (webhook.exitCode === null) webhook.kill("SIGKILL");
    });

    const caBundle = async () => (await getJson(["get", "mutatingwebhookconfiguration", "microenforcer-injector"])).webhooks[0].clientConfig.caBundle as string | undefined;

    it("patches its CA into the MutatingWebhookConfiguration, and again after a reset", async () => {
      const first = await eventually("the caBundle", async () => (await caBundle()) || undefined);
      const secret = await getJson(["-n", "microenforcer-system", "get", "secret", "microenforcer-injector-tls"]);
      assert.equal(first, secret.data["ca.crt"]);
      await kubectl(["patch", "mutatingwebhookconfiguration", "microenforcer-injector", "--type=json", "-p", '[{"op":"remove","path":"/webhooks/0/clientConfig/caBundle"}]']);
      assert.equal(await eventually("the caBundle again", async () => (await caBundle()) || undefined), first);
    });

    it("injects pods of a labelled namespace with the RuntimePolicy in scope, dryRun alike", async () => {
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "api", namespace: "apps", labels: { app: "api" } }, spec: { containers: [{ name: "api", image: "registry.example/api:1" }] } };
      // The policy was created a moment ago: wait until the webhook's informer has it.
      const dryRun = await eventually("the policy in scope", async () => {
        const answer = JSON.parse(await kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], JSON.stringify(pod))) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        return answer.metadata.annotations?.["microenforcer.dev/policy"] === "apps-policy" ? answer : undefined;
      });
      const sidecar = dryRun.spec.initContainers.find((c: { name: string }) => c.name === "microenforcer");
      assert.equal(sidecar?.image, OWN_IMAGE, "the sidecar runs the injector's own image");
      await kubectl(["create", "-f", "-"], JSON.stringify(pod));
      const created = await getJson(["-n", "apps", "get", "pod", "api"]);
      assert.deepEqual(
        created.spec.initContainers.map((c: { name: string; restartPolicy?: string }) => [c.name, c.restartPolicy]),
        [
          ["microenforcer-preload", undefined],
          ["microenforcer", "Always"],
        ],
      );
      assert.equal(created.spec.shareProcessNamespace, true);
      assert.equal(created.metadata.annotations["microenforcer.dev/policy"], "apps-policy");
      assert.equal(signedPolicy(created.metadata.annotations["microenforcer.dev/policy-document"]).spec.enforcementMode, "audit");
    });

    it("leaves pods of other namespaces alone", async () => {
      await kubectl(["create", "namespace", "plain"]);
      const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "x", namespace: "plain" }, spec: { containers: [{ name: "x", image: "x" }] } };
      await kubectl(["create", "-f", "-"], JSON.stringify(pod));
      assert.equal((await getJson(["-n", "plain", "get", "pod", "x"])).spec.initContainers, undefined);
    });

    const createInTenant = (metadata: object, spec: object = {}) =>
      cp.kubectl(["create", "-o", "json", "-f", "-"], {
        input: JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { namespace: "tenant", ...metadata }, spec: { containers: [{ name: "app", image: "registry.example/app:1" }], ...spec } }),
      });

    it("in a namespace that requires the MicroEnforcer: injects pods that opt out, ask for a classic sidecar, or claim to be injected, and says what it ignored", async () => {
      const result = await createInTenant(
        { name: "opt-out", labels: { "microenforcer.dev/inject": "false", "app.kubernetes.io/name": "microenforcer-injector" }, annotations: { "microenforcer.dev/status": "x", "microenforcer.dev/native-sidecar": "false" } },
        { restartPolicy: "Never" },
      );
      assert.equal(result.code, 0, result.stderr);
      const stored = JSON.parse(result.stdout);
      assert.deepEqual(stored.spec.initContainers?.map((c: { name: string; restartPolicy: string }) => [c.name, c.restartPolicy]), [
        ["microenforcer-preload", undefined],
        ["microenforcer", "Always"],
      ]);
      assert.match(result.stderr, /Warning: microenforcer: microenforcer\.dev\/inject: "false" ignored: the namespace requires the MicroEnforcer/);
      assert.match(result.stderr, /Warning: microenforcer: microenforcer\.dev\/native-sidecar: "false" ignored/);
      assert.doesNotMatch(result.stderr, /1\.29/);
    });

    it("in a namespace that requires the MicroEnforcer: refuses what it cannot inject, with the reason", async () => {
      const hostPid = await createInTenant({ name: "host-pid" }, { hostPID: true });
      assert.notEqual(hostPid.code, 0);
      assert.match(hostPid.stderr, /admission webhook "required\.inject\.microenforcer\.dev" denied the request: microenforcer: refused: the namespace requires the MicroEnforcer \(microenforcer\.dev\/injection=required\), and hostPID pods/);
      const forged = await createInTenant({ name: "forged" }, { containers: [{ name: "app", image: "registry.example/app:1" }, { name: "microenforcer", image: "registry.example/quiet:1" }] });
      assert.notEqual(forged.code, 0);
      assert.match(forged.stderr, /refused: .*container microenforcer \(not the genuine sidecar\): image is "registry\.example\/quiet:1"/);
    });

    it("updates the policy of running pods when their RuntimePolicy changes, and only those of injected namespaces", async () => {
      // Looks injected (a status annotation that is not even JSON, a container named like the
      // sidecar) but lives where nothing is injected: the injector must not write to it.
      const lookalike = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "lookalike", namespace: "plain", annotations: { "microenforcer.dev/status": "{", "microenforcer.dev/policy-document": "{}" } },
        spec: { containers: [{ name: "app", image: "x" }, { name: "microenforcer", image: "x" }] },
      };
      await kubectl(["create", "-f", "-"], JSON.stringify(lookalike));
      await kubectl(["apply", "-f", "-"], JSON.stringify(policy("enforce")));
      await eventually("the pod's policy document to change", async () => {
        const annotations = (await getJson(["-n", "apps", "get", "pod", "api"])).metadata.annotations;
        return signedPolicy(annotations["microenforcer.dev/policy-document"]).spec.enforcementMode === "enforce" ? true : undefined;
      });
      assert.equal((await getJson(["-n", "plain", "get", "pod", "lookalike"])).metadata.annotations["microenforcer.dev/policy-document"], "{}");
    });

    it("counts its work in /metrics and stops cleanly on SIGTERM", async () => {
      const { request } = await import("node:https");
      const secret = await getJson(["-n", "microenforcer-system", "get", "secret", "microenforcer-injector-tls"]);
      const ca = Buffer.from(secret.data["ca.crt"], "base64").toString();
      const metrics = await new Promise<string>((resolve, reject) => {
        request({ host: "127.0.0.1", port, path: "/metrics", ca }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c)).on("end", () => resolve(body));
        })
          .on("error", reject)
          .end();
      });
      assert.match(metrics, /microenforcer_injector_injections_total\{form="native"\} [1-9]/);
      assert.match(metrics, /microenforcer_injector_policy_updates_total\{result="updated"\} [1-9]/);
      webhook.kill("SIGTERM");
      const [code] = (await once(webhook, "exit")) as [number];
      assert.equal(code, 0, stderr);
      assert.doesNotMatch(stderr, /watch .* failed/, "stopping its watches is not a failure");
    });
  });
});


/** The policy in a document the injector signed: the payload of the envelope. */
function signedPolicy(document: string): { spec: { enforcementMode: string } } {
  const envelope = JSON.parse(document) as { kind: string; payload: string };
  assert.equal(envelope.kind, "SignedRuntimePolicy", "the injector signs what it embeds");
  return (JSON.parse(envelope.payload) as { policy: { spec: { enforcementMode: string } } }).policy;
}

function policy(enforcementMode: "audit" | "enforce") {
  return {
    apiVersion: "microenforcer.dev/v1alpha1",
    kind: "RuntimePolicy",
    metadata: { name: "apps-policy" },
    // No forensics: the API server fills in the CRD's defaults.
    spec: { enforcementMode, priority: 10, scope: { namespaceSelector: { matchLabels: { team: "apps" } } } },
  };
}

/** The manifests' webhook entry, pointed at the test process by URL instead of a Service. */
function webhookConfiguration(port: number) {
  const manifest = parse(readFileSync(new URL("../../manifests/base/mutating-webhook.yaml", import.meta.url), "utf8")) as {
    webhooks: { clientConfig: Record<string, unknown> }[];
  };
  for (const webhook of manifest.webhooks) webhook.clientConfig = { url: `https://127.0.0.1:${port}/mutate` };
  return manifest;
}
