import assert from "node:assert/strict";
import jsonpatch from "fast-json-patch";
import { parseWorkload, WORKLOAD_ENV } from "../../microenforcer/sidecar-contract.ts";
import { defaultInjectorConfig, type InjectorConfig } from "../../webhook/config.ts";
import { injectPod } from "../../webhook/inject.ts";
import type { JsonObject } from "../../webhook/json.ts";
import { injectorConfigFrom, UsageError } from "../../webhook/options.ts";
import { podWorkload } from "../../webhook/workload.ts";

const config = (workload: Partial<InjectorConfig["workload"]> = {}): InjectorConfig => ({
  ...defaultInjectorConfig(),
  workload: { resource: {}, podLabels: [], ...workload },
});

function pod(metadata: JsonObject = {}, spec: JsonObject = {}): JsonObject {
  return { apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "shop", ...metadata }, spec: { containers: [{ name: "app", image: "registry.example/shop/api:1.4.2" }], ...spec } };
}
const owned = (kind: string, name: string, labels: Record<string, string> = {}) =>
  pod({ labels, ownerReferences: [{ apiVersion: "apps/v1", kind, name, uid: `uid-${name}`, controller: true }] });

describe("webhook/workload: what every record's resource says about the pod", () => {
  it("names a Deployment's pod by its ReplicaSet and, through the pod-template-hash, its Deployment", () => {
    assert.deepEqual(podWorkload(owned("ReplicaSet", "api-7d9f8b6c5d", { "pod-template-hash": "7d9f8b6c5d" }), config()).resource, {
      "k8s.replicaset.name": "api-7d9f8b6c5d",
      "k8s.replicaset.uid": "uid-api-7d9f8b6c5d",
      "k8s.deployment.name": "api",
    });
  });

  it("does not make up a Deployment for a ReplicaSet of its own", () => {
    assert.deepEqual(Object.keys(podWorkload(owned("ReplicaSet", "legacy"), config()).resource), ["k8s.replicaset.name", "k8s.replicaset.uid"]);
    assert.deepEqual(Object.keys(podWorkload(owned("ReplicaSet", "legacy-x", { "pod-template-hash": "y" }), config()).resource), ["k8s.replicaset.name", "k8s.replicaset.uid"]);
  });

  for (const [kind, key] of [
    ["StatefulSet", "k8s.statefulset.name"],
    ["DaemonSet", "k8s.daemonset.name"],
    ["Job", "k8s.job.name"],
  ] as const) {
    it(`names a ${kind}'s pod by its ${kind}`, () => {
      assert.equal(podWorkload(owned(kind, "w"), config()).resource[key], "w");
    });
  }

  it("takes the controller among several owners, and nothing from an owner kind without a convention", () => {
    const twoOwners = pod({ ownerReferences: [{ kind: "ConfigMap", name: "c", uid: "1" }, { kind: "StatefulSet", name: "db", uid: "2", controller: true }] });
    assert.equal(podWorkload(twoOwners, config()).resource["k8s.statefulset.name"], "db");
    assert.deepEqual(podWorkload(owned("SparkApplication", "s"), config()).resource, {});
  });

  it("copies only the pod labels the admin chose, with the cluster and cloud the admin named", () => {
    const resource = { "k8s.cluster.name": "prod-eu", "cloud.provider": "aws", "cloud.region": "eu-west-1" };
    const labelled = pod({ labels: { app: "api", "app.kubernetes.io/version": "1.4.2", secret: "x" } });
    assert.deepEqual(podWorkload(labelled, config({ resource, podLabels: ["app", "app.kubernetes.io/version", "team"] })).resource, {
      ...resource,
      "k8s.pod.label.app": "api",
      "k8s.pod.label.app.kubernetes.io/version": "1.4.2",
    });
  });

  it("gives each container's image, init containers' too, never the sidecar's", () => {
    const spec = { initContainers: [{ name: "microenforcer", image: "microenforcer:0.1.0" }, { name: "migrate", image: "flyway@sha256:" + "a".repeat(64) }] };
    assert.deepEqual(podWorkload(pod({}, spec), config()).containerImages, { migrate: `flyway@sha256:${"a".repeat(64)}`, app: "registry.example/shop/api:1.4.2" });
  });

  it("takes cluster, cloud and pod labels from the injector's flags, refusing what is no label key", () => {
    const flags = injectorConfigFrom({ "cluster-name": "prod-eu", "cloud-provider": "aws", "cloud-platform": "aws_eks", "cloud-region": "eu-west-1", "cloud-account-id": "123456789012", "pod-labels": "app, app.kubernetes.io/name" }, {});
    assert.deepEqual(flags.workload, {
      resource: { "k8s.cluster.name": "prod-eu", "cloud.provider": "aws", "cloud.platform": "aws_eks", "cloud.region": "eu-west-1", "cloud.account.id": "123456789012" },
      podLabels: ["app", "app.kubernetes.io/name"],
    });
    assert.throws(() => injectorConfigFrom({ "pod-labels": "app,bad key" }, {}), (err: Error) => err instanceof UsageError && /'bad key' is not a label key/.test(err.message));
  });
});

describe("webhook/workload: the containers' exec probes, for the sidecar to tell them from exec sessions", () => {
  const ready = ["/bin/sh", "-c", "test -f /tmp/ready"];
  it("hands each container's exec probes to the sidecar, each argv once; other probe kinds and the sidecar's own are not probes", () => {
    const spec = {
      initContainers: [{ name: "microenforcer", image: "me:1", livenessProbe: { exec: { command: ["true"] } } }],
      containers: [
        { name: "app", image: "a:1", livenessProbe: { exec: { command: ready } }, readinessProbe: { exec: { command: ready } }, startupProbe: { exec: { command: ["pg_isready"] } } },
        { name: "web", image: "w:1", livenessProbe: { httpGet: { path: "/", port: 80 } } },
        { name: "odd", image: "o:1", livenessProbe: { exec: { command: [] } }, readinessProbe: { exec: { command: ["ok", 7] } } },
      ],
    };
    assert.deepEqual(podWorkload(pod({}, spec), config()).probes, { app: [ready, ["pg_isready"]] });
    assert.equal(podWorkload(pod(), config()).probes, undefined, "no key without exec probes");
  });

  it("the sidecar refuses a probes entry that is not lists of argv", () => {
    const text = (probes: unknown) => JSON.stringify({ resource: {}, containerImages: {}, probes });
    assert.deepEqual(parseWorkload(text({ app: [ready] })).probes, { app: [ready] });
    for (const bad of [[ready], { app: ready }, { app: [[]] }, { app: [[1]] }]) assert.throws(() => parseWorkload(text(bad)), /"probes" must map container names to lists of argv/);
  });
});

describe("the workload variable of the sidecar", () => {
  const context = (c: InjectorConfig) => ({ config: c, policies: [], namespaceLabels: { "microenforcer.dev/injection": "enabled" }, clusterDns: undefined });
  const workloadOf = (p: JsonObject) => {
    const containers = [...(((p.spec as JsonObject).initContainers as JsonObject[] | undefined) ?? []), ...((p.spec as JsonObject).containers as JsonObject[])];
    const sidecar = containers.find((c) => c.name === "microenforcer")!;
    return parseWorkload((sidecar.env as Array<{ name: string; value: string }>).find((e) => e.name === WORKLOAD_ENV)?.value);
  };
  const admin = config({ resource: { "k8s.cluster.name": "prod-eu" } });
  const injected = () => injectPod(owned("StatefulSet", "db"), "shop", context(admin)).rendered!.pod;

  it("is rendered into the sidecar's own spec", () => {
    assert.deepEqual(workloadOf(injected()), {
      resource: { "k8s.cluster.name": "prod-eu", "k8s.statefulset.name": "db", "k8s.statefulset.uid": "uid-db" },
      containerImages: { app: "registry.example/shop/api:1.4.2" },
    });
  });

  it("follows containers a later webhook added (reinvocation), without taking the sidecar for forged", () => {
    const pod = injected();
    ((pod.spec as JsonObject).containers as JsonObject[]).push({ name: "istio-proxy", image: "istio/proxyv2:1.22" });
    const outcome = injectPod(pod, "shop", context(admin));
    assert.equal(outcome.decision.action, "skip");
    const touched = jsonpatch.applyPatch(structuredClone(pod), outcome.touchUp!.patch, true, false).newDocument;
    assert.deepEqual(workloadOf(touched).containerImages, { app: "registry.example/shop/api:1.4.2", "istio-proxy": "istio/proxyv2:1.22" });
  });

  it("never keeps what a pod brought along in it: a sidecar copied with a forged variable gets the injector's", () => {
    const pod = injected();
    const sidecar = ((pod.spec as JsonObject).initContainers as JsonObject[]).find((c) => c.name === "microenforcer")!;
    const env = sidecar.env as Array<{ name: string; value?: string }>;
    env[env.length - 1]!.value = JSON.stringify({ resource: { "k8s.cluster.name": "someone-elses", "k8s.deployment.name": "payments" }, containerImages: { app: "trusted:1" } });
    const outcome = injectPod(pod, "shop", context(admin));
    const touched = jsonpatch.applyPatch(structuredClone(pod), outcome.touchUp!.patch, true, false).newDocument;
    assert.deepEqual(workloadOf(touched), workloadOf(injected()));
  });
});
