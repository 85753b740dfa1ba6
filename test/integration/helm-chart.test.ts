/**
 * The Helm chart (charts/microenforcer) with helm 3 and helm 4 built from Go modules: it
 * lints, its values schema refuses what it should, manifests/ is what it renders (one
 * source for both installs), `helm template` and `kubectl kustomize manifests/` give the same
 * objects, and each optional feature renders what it promises.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { buildHelm, HELM_LABELS, helmTemplate, renderManifests } from "../../charts/generate-manifests.ts";
import { buildKube } from "../infra/kube/control-plane.ts";

const run = promisify(execFile);
const repo = new URL("../../", import.meta.url).pathname;
const chart = `${repo}charts/microenforcer`;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

const objects = (text: string): K8sObject[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);

const find = (list: K8sObject[], kind: string, name: string): K8sObject => {
  const found = list.find((o) => o.kind === kind && o.metadata.name === name);
  assert.ok(found, `${kind}/${name} among ${list.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return found;
};

/** What both installs must agree on: everything but Helm's own bookkeeping. */
function withoutHelmBookkeeping(o: K8sObject): K8sObject {
  const copy = structuredClone(o);
  for (const label of HELM_LABELS) delete copy.metadata.labels?.[label];
  delete copy.metadata.annotations?.["helm.sh/resource-policy"];
  if (copy.metadata.labels && Object.keys(copy.metadata.labels).length === 0) delete copy.metadata.labels;
  if (copy.metadata.annotations && Object.keys(copy.metadata.annotations).length === 0) delete copy.metadata.annotations;
  return copy;
}
const byIdentity = (a: K8sObject, b: K8sObject) => `${a.kind}/${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.namespace}/${b.metadata.name}`);

type Pod = { spec: { containers: Array<{ args: string[]; volumeMounts?: unknown[] }>; volumes?: Array<{ secret?: { secretName: string } }> } };
type Webhook = { name: string; failurePolicy: string; namespaceSelector: { matchExpressions: Array<{ key: string }> }; objectSelector?: { matchExpressions?: Array<{ key: string }> } };
const podSpec = (list: K8sObject[]) => (find(list, "Deployment", "microenforcer-injector").spec as { template: Pod }).template.spec;
const webhooks = (list: K8sObject[]) => (find(list, "MutatingWebhookConfiguration", "microenforcer-injector") as unknown as { webhooks: Webhook[] }).webhooks;

describe("Helm chart", function () {
  this.timeout(60_000);
  let helms: Record<"helm 3" | "helm 4", string>;
  let kubectl: string;

  before(async function () {
    this.timeout(60 * 60 * 1000); // cold builds fetch and compile helm and kubectl from Go modules
    const { helm3, helm4 } = await buildHelm();
    helms = { "helm 3": helm3, "helm 4": helm4 };
    kubectl = `${await buildKube()}/kubectl`;
  });

  const template = (helm: string, values: Record<string, unknown> = {}) => helmTemplate(helm, values).then(objects);

  for (const version of ["helm 3", "helm 4"] as const) {
    it(`passes ${version} lint, with its defaults and with every feature on`, async () => {
      for (const values of [[], ["--set", "certificates.mode=certManager,serviceMonitor.enabled=true", "--set-json", 'networkPolicy={"enabled":true,"from":[{"ipBlock":{"cidr":"10.0.0.0/28"}}]}']]) {
        const { stdout } = await run(helms[version], ["lint", "--strict", chart, ...values]);
        assert.match(stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
      }
    });

    it(`${version}: helm template gives the objects kubectl kustomize manifests/ gives, for the same settings`, async () => {
      const fromHelm = (await template(helms[version])).map(withoutHelmBookkeeping).sort(byIdentity);
      const { stdout } = await run(kubectl, ["kustomize", `${repo}manifests`], { maxBuffer: 16 * 1024 * 1024 });
      // Helm leaves the release namespace to the user (helm install --create-namespace).
      const fromKustomize = objects(stdout)
        .filter((o) => o.kind !== "Namespace")
        .sort(byIdentity);
      assert.deepEqual(fromHelm, fromKustomize);
    });
  }

  it("renders manifests/ (run `npm run generate:manifests` after changing charts/microenforcer)", async () => {
    for (const [path, text] of await renderManifests(helms["helm 4"])) assert.equal(readFileSync(`${repo}${path}`, "utf8"), text, path);
  });

  it("refuses values its schema does not know, naming the key", async () => {
    const refused = async (args: string[], message: RegExp) => {
      const error = await run(helms["helm 4"], ["template", "x", chart, ...args]).then(
        () => undefined,
        (err: unknown) => err as { stderr: string },
      );
      assert.ok(error, `accepted: ${args.join(" ")}`);
      assert.match(error.stderr, message);
    };
    await refused(["--set", "injector.replica=3"], /additional properties 'replica' not allowed/);
    await refused(["--set", "webhook.failurePolicy=Never"], /failurePolicy.*'Ignore', 'Fail'/);
    await refused(["--set", "execWebhook.failurePolicy=Never"], /failurePolicy.*'Ignore', 'Fail'/);
    await refused(["--set", "sidecar.resources.limits.memory=lots"], /memory/);
    // Credentials would be readable in every tenant's pod spec.
    await refused(["--set", "otlp.env.OTEL_EXPORTER_OTLP_HEADERS=authorization=x"], /OTEL_EXPORTER_OTLP_HEADERS/);
    await refused(["--set", "networkPolicy.enabled=true"], /networkPolicy.from must list the control plane's addresses/);
    await refused(["--set", "otlp.endpoint=https://otlp.example", "--set", "otlp.headers.authorization=token"], /otlp.headersSecret must name the Secret/);
  });

  it("optional objects: no ServiceMonitor unless asked, the CRD switch, the injector's resources and affinity", async () => {
    const defaults = await template(helms["helm 4"]);
    assert.ok(!defaults.some((o) => o.kind === "ServiceMonitor"), "a ServiceMonitor needs the Prometheus Operator's CRD: off by default");
    assert.ok(defaults.some((o) => o.kind === "CustomResourceDefinition"));
    // Replicas prefer different nodes unless the admin says otherwise.
    const defaultPod = podSpec(defaults) as Pod["spec"] & { affinity?: { podAntiAffinity?: unknown } };
    assert.ok(defaultPod.affinity?.podAntiAffinity, JSON.stringify(defaultPod.affinity));

    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: "pool", operator: "In", values: ["system"] }] }] } } };
    const list = await template(helms["helm 4"], {
      serviceMonitor: { enabled: true, interval: "15s", labels: { release: "prom" } },
      crds: { install: false },
      injector: { resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } }, affinity },
    });
    const monitor = find(list, "ServiceMonitor", "microenforcer-injector") as K8sObject & { spec: { endpoints: Array<{ port: string; scheme: string; path: string; interval: string }> } };
    assert.equal(monitor.metadata.labels?.release, "prom");
    assert.deepEqual(
      monitor.spec.endpoints.map((e) => [e.port, e.scheme, e.path, e.interval]),
      [["https", "https", "/metrics", "15s"]],
    );
    // The ServiceMonitor selects the injector's Service by its labels, and that Service names the port.
    const service = find(list, "Service", "microenforcer-injector") as K8sObject & { spec: { ports: Array<{ name: string }> } };
    assert.ok(service.spec.ports.some((p) => p.name === "https"));
    assert.ok(!list.some((o) => o.kind === "CustomResourceDefinition"), "crds.install=false: the CRD is managed elsewhere");
    const pod = podSpec(list) as Pod["spec"] & { affinity?: unknown; containers: Array<{ resources?: unknown }> };
    assert.deepEqual(pod.affinity, affinity);
    assert.deepEqual(pod.containers[0]!.resources, { requests: { cpu: "100m", memory: "128Mi" }, limits: { memory: "512Mi" } });
  });

  it("certManager: cert-manager issues the serving certificate and injects the CA; the injector gets no rights on TLS Secrets", async () => {
    const list = await template(helms["helm 4"], { certificates: { mode: "certManager" } });
    const pod = podSpec(list);
    assert.deepEqual(pod.containers[0]!.args.slice(0, 3), ["webhook", "--cert-dir", "/etc/microenforcer/tls"]);
    assert.equal(pod.volumes?.[0]?.secret?.secretName, "microenforcer-injector-tls");
    const certificate = find(list, "Certificate", "microenforcer-injector").spec as { secretName: string; dnsNames: string[]; issuerRef: { name: string } };
    assert.deepEqual(certificate.dnsNames, ["microenforcer-injector", "microenforcer-injector.microenforcer-system", "microenforcer-injector.microenforcer-system.svc", "microenforcer-injector.microenforcer-system.svc.cluster.local"]);
    assert.equal(certificate.issuerRef.name, "microenforcer-ca");
    assert.equal(find(list, "MutatingWebhookConfiguration", "microenforcer-injector").metadata.annotations?.["cert-manager.io/inject-ca-from"], "microenforcer-system/microenforcer-injector");
    assert.equal(find(list, "ValidatingWebhookConfiguration", "microenforcer-exec").metadata.annotations?.["cert-manager.io/inject-ca-from"], "microenforcer-system/microenforcer-injector");
    const role = JSON.stringify(find(list, "Role", "microenforcer-injector")) + JSON.stringify(find(list, "ClusterRole", "microenforcer-injector"));
    assert.doesNotMatch(role, /microenforcer-injector-tls|microenforcer-injector-ca|mutatingwebhookconfigurations|validatingwebhookconfigurations/);
    // Only its policy-signing key, which it creates on first start.
    assert.match(role, /"resourceNames":\["microenforcer-injector-signing"\],"verbs":\["get"\]/);
    const withIssuer = await template(helms["helm 4"], { certificates: { mode: "certManager", certManager: { issuerRef: { name: "corp-ca", kind: "ClusterIssuer" } } } });
    assert.deepEqual(withIssuer.filter((o) => o.apiVersion === "cert-manager.io/v1").map((o) => o.metadata.name), ["microenforcer-injector"]);
  });

  it("OTLP with headers from a Secret: a relay collector adds them, and no tenant's pod ever holds them", async () => {
    const list = await template(helms["helm 4"], {
      otlp: { endpoint: "https://otlp.example:4318", headersSecret: "backend", headers: { authorization: "token" }, env: { OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod" } },
    });
    const sidecarEnv = find(list, "ConfigMap", "microenforcer-sidecar-otel") as unknown as { data: Record<string, string> };
    assert.deepEqual(sidecarEnv.data, {
      OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=prod",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://microenforcer-otlp-relay.microenforcer-system.svc:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    });
    const relay = JSON.stringify(find(list, "Deployment", "microenforcer-otlp-relay"));
    assert.match(relay, /"secretKeyRef":\{"name":"backend","key":"token"\}/);
    const config = (find(list, "ConfigMap", "microenforcer-otlp-relay") as unknown as { data: { "config.yaml": string } }).data["config.yaml"];
    assert.match(config, /otlphttp:\n\s+endpoint: "https:\/\/otlp\.example:4318"\n\s+headers:\n\s+"authorization": "\$\{env:HEADER_AUTHORIZATION\}"/);
    // Without headers the sidecars send straight to the endpoint.
    const direct = await template(helms["helm 4"], { otlp: { endpoint: "http://collector.obs:4317", protocol: "grpc" } });
    assert.deepEqual((find(direct, "ConfigMap", "microenforcer-sidecar-otel") as unknown as { data: object }).data, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector.obs:4317", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" });
    assert.ok(!direct.some((o) => o.metadata.name === "microenforcer-otlp-relay"));
  });

  it("webhook settings: modes, the admin's selectors (never pod labels for required namespaces), fail-closed, timeout", async () => {
    const list = await template(helms["helm 4"], {
      webhook: {
        failurePolicy: "Fail",
        timeoutSeconds: 3,
        modes: { podOptIn: false },
        namespaceSelector: { matchExpressions: [{ key: "env", operator: "In", values: ["prod"] }] },
        objectSelector: { matchExpressions: [{ key: "app", operator: "Exists" }] },
        excludedNamespaces: ["kube-system", "legacy"],
      },
    });
    const entries = webhooks(list);
    assert.deepEqual(entries.map((w) => w.name), ["required.inject.microenforcer.dev", "namespace.inject.microenforcer.dev"]);
    for (const w of entries) {
      assert.equal(w.failurePolicy, "Fail");
      assert.deepEqual(w.namespaceSelector.matchExpressions.map((e) => e.key), ["microenforcer.dev/injection", "kubernetes.io/metadata.name", "env"]);
      assert.match(JSON.stringify(w.namespaceSelector), /"values":\["kube-system","legacy","microenforcer-system"\]/);
    }
    assert.equal(entries[0]!.objectSelector, undefined);
    assert.deepEqual(entries[1]!.objectSelector?.matchExpressions?.map((e) => e.key), ["microenforcer.dev/inject", "app"]);
    assert.ok(podSpec(list).containers[0]!.args.includes("--fail-closed"));
  });

  it("validating layer: bound to the release's namespace and ServiceAccount, and off on request", async () => {
    const list = await helmTemplate(helms["helm 4"], {}, ["--namespace", "sec"]).then(objects);
    const metadata = JSON.stringify(find(list, "ValidatingAdmissionPolicy", "microenforcer-protected-metadata"));
    assert.match(metadata, /system:serviceaccount:sec:microenforcer-injector/);
    const binding = find(list, "ValidatingAdmissionPolicyBinding", "microenforcer-sidecar-required").spec as { paramRef: { namespace: string }; matchResources: unknown };
    assert.equal(binding.paramRef.namespace, "sec");
    assert.match(JSON.stringify(binding.matchResources), /"values":\["kube-system","kube-public","kube-node-lease","sec"\]/);
    const off = await template(helms["helm 4"], { validating: { enabled: false } });
    assert.deepEqual(off.filter((o) => o.kind.startsWith("ValidatingAdmissionPolicy")), []);
  });

  it("the sidecar's resources, the workload metadata and the image reach the injector's flags and pod", async () => {
    const digest = `sha256:${"ab".repeat(32)}`;
    const list = await template(helms["helm 4"], {
      image: { repository: "registry.example/sec/microenforcer", digest, pullSecrets: [{ name: "regcred" }] },
      sidecar: { resources: { requests: { cpu: "50m", memory: "96Mi" }, limits: { cpu: "1", memory: "320Mi" } }, allowPtrace: true, runtimeDefaultCapabilities: ["CHOWN", "KILL"] },
      injector: { replicas: 3, priorityClassName: "system-cluster-critical", pdb: { enabled: false } },
      workload: { clusterName: "prod-eu", cloud: { provider: "aws", region: "eu-west-1" }, podLabels: ["app", "app.kubernetes.io/version"] },
    });
    const pod = podSpec(list) as Pod["spec"] & { priorityClassName?: string; imagePullSecrets?: unknown; containers: Array<{ image?: string }> };
    assert.equal(pod.containers[0]!.image, `registry.example/sec/microenforcer@${digest}`);
    assert.deepEqual(pod.imagePullSecrets, [{ name: "regcred" }]);
    assert.equal(pod.priorityClassName, "system-cluster-critical");
    assert.deepEqual(pod.containers[0]!.args.slice(6), ["--sidecar-cpu-request", "50m", "--sidecar-memory-request", "96Mi", "--sidecar-cpu", "1", "--sidecar-memory", "320Mi", "--allow-ptrace",
      "--cloud-provider", "aws", "--cloud-region", "eu-west-1", "--cluster-name", "prod-eu", "--pod-labels", "app,app.kubernetes.io/version", "--runtime-default-capabilities", "CHOWN,KILL"]);
    assert.ok(!list.some((o) => o.kind === "PodDisruptionBudget"));
  });
});
