/**
 * `helm install`, `helm upgrade` and `helm uninstall` of charts/microenforcer, with helm 3
 * and helm 4 built from Go modules, against the real kube-apiserver of this tier; between
 * them the real injector runs with what the chart installed (its ServiceAccount, RBAC and
 * webhook configuration) and injects a pod the apiserver admits through it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { buildHelm } from "../../charts/generate-manifests.ts";
import { buildKube, startControlPlane, type ControlPlane } from "../infra/kube/control-plane.ts";
import { buildImages, type Images } from "../infra/podman/podman.ts";
import { freeTcpPorts } from "../infra/processes.ts";
import { eventually } from "./eventually.ts";
import { INJECTOR_NAMESPACE, pointWebhooksAt, startInjector, type Injector } from "./injector.ts";
import { kubectl, kubectlJson } from "./kube.ts";

const run = promisify(execFile);
const chart = new URL("../../charts/microenforcer", import.meta.url).pathname;

interface Webhooks {
  webhooks: Array<{ name: string; failurePolicy: string; timeoutSeconds: number; clientConfig: { caBundle?: string } }>;
}
interface Container {
  name: string;
  args?: string[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface Pod {
  spec: { containers: Container[]; initContainers?: Container[] };
}

describe("Helm: install, upgrade and uninstall on a real kube-apiserver", function () {
  this.timeout(180_000);
  let cp: ControlPlane;
  let images: Images;
  let helms: { helm3: string; helm4: string };
  let injectorPort: number;

  before(async function () {
    this.timeout(60 * 60 * 1000); // cold builds of helm, the control plane and the images
    let kubeBin: string;
    [helms, kubeBin, images, [injectorPort = 0]] = await Promise.all([buildHelm(), buildKube(), buildImages(), freeTcpPorts(1)]);
    cp = await startControlPlane({ binDir: kubeBin });
    await kubectl(cp, ["create", "namespace", INJECTOR_NAMESPACE]);
    await kubectl(cp, ["label", "namespace", INJECTOR_NAMESPACE, "pod-security.kubernetes.io/enforce=restricted"]);
  });
  after(async () => cp?.stop());

  const webhookConfiguration = async () => (await kubectlJson(cp, ["get", "mutatingwebhookconfiguration", "microenforcer-injector"])) as Webhooks;

  for (const version of ["helm3", "helm4"] as const) {
    it(`${version}: installs what the injector needs, keeps the CA it patched in across an upgrade, and uninstalls`, async () => {
      const helm = (...args: string[]) =>
        run(helms[version], [...args, "--namespace", INJECTOR_NAMESPACE, "--kubeconfig", cp.kubeconfigPath], { maxBuffer: 16 * 1024 * 1024 }).then((r) => r.stdout);

      await helm("install", "microenforcer", chart);
      try {
        await installUpgradeInject(helm, version);
      } finally {
        // Cluster-wide objects: the next helm's release needs them gone, whatever failed.
        await helm("uninstall", "microenforcer", "--ignore-not-found");
      }
      const left = await cp.kubectl(["get", "mutatingwebhookconfiguration", "microenforcer-injector"]);
      assert.match(left.stderr, /NotFound/);
      const objects = await kubectl(cp, ["--namespace", INJECTOR_NAMESPACE, "get", "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget", "-o", "name"]);
      assert.doesNotMatch(objects, /microenforcer-injector/);
      // The CRD stays, and with it every RuntimePolicy (crds.keep).
      await kubectl(cp, ["get", "crd", "runtimepolicies.microenforcer.dev"]);
    });
  }

  /** The release as installed; the injector on it; an upgrade; a pod admitted through the upgraded release. */
  async function installUpgradeInject(helm: (...args: string[]) => Promise<string>, version: string): Promise<void> {
    assert.match(await helm("status", "microenforcer"), /STATUS: deployed/);
    const installed = await webhookConfiguration();
    assert.deepEqual(
      installed.webhooks.map((w) => [w.name, w.failurePolicy]),
      [
        ["required.inject.microenforcer.dev", "Ignore"],
        ["namespace.inject.microenforcer.dev", "Ignore"],
        ["object.inject.microenforcer.dev", "Ignore"],
      ],
    );
    await kubectl(cp, ["wait", "--for=condition=established", "crd/runtimepolicies.microenforcer.dev", "--timeout=60s"]);

    // The injector, with the chart's ServiceAccount and RBAC: it creates its TLS Secrets and
    // patches its CA into the chart's webhook configuration.
    let injector: Injector | undefined = await startInjector(cp, { image: images.microenforcer, port: injectorPort, otelEnv: {} });
    try {
      const caBundle = await eventually("the injector to patch its CA in", async () => {
        const bundles = new Set((await webhookConfiguration()).webhooks.map((w) => w.clientConfig.caBundle));
        const [bundle] = bundles;
        return bundles.size === 1 && bundle ? bundle : undefined;
      });

      await helm("upgrade", "microenforcer", chart, "--set", "webhook.failurePolicy=Fail,webhook.timeoutSeconds=3,webhook.modes.podOptIn=false,injector.replicas=3", "--set", "sidecar.resources.limits.memory=256Mi");
      const upgraded = await webhookConfiguration();
      assert.deepEqual(
        upgraded.webhooks.map((w) => [w.name, w.failurePolicy, w.timeoutSeconds]),
        [
          ["required.inject.microenforcer.dev", "Fail", 3],
          ["namespace.inject.microenforcer.dev", "Fail", 3],
        ],
      );
      // An upgrade does not take the CA away from the webhooks it kept (or the injector puts it back).
      await eventually("the CA in every webhook after the upgrade", async () => ((await webhookConfiguration()).webhooks.every((w) => w.clientConfig.caBundle === caBundle) ? true : undefined));
      const deployment = (await kubectlJson(cp, ["--namespace", INJECTOR_NAMESPACE, "get", "deployment", "microenforcer-injector"])) as { spec: { replicas: number; template: Pod } };
      assert.equal(deployment.spec.replicas, 3);
      const args = deployment.spec.template.spec.containers[0]!.args!;
      assert.ok(args.includes("--fail-closed"), args.join(" "));
      assert.equal(args[args.indexOf("--sidecar-memory") + 1], "256Mi");

      // The apiserver calls the injector through the upgraded configuration (by URL here:
      // nothing routes Service traffic) and the pod comes back with the sidecar.
      // Run with the upgraded Deployment's flags, as its new pods would.
      await injector.stop();
      injector = await startInjector(cp, { image: images.microenforcer, port: injectorPort, otelEnv: {}, args });
      await pointWebhooksAt(cp, `https://127.0.0.1:${injectorPort}`);
      const namespace = `helm-${version}`;
      await kubectl(cp, ["create", "namespace", namespace]);
      await kubectl(cp, ["label", "namespace", namespace, "microenforcer.dev/injection=enabled"]);
      const pod = JSON.parse(
        await kubectl(
          cp,
          ["create", "-o", "json", "-f", "-"],
          JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "app", namespace }, spec: { containers: [{ name: "app", image: images.app, command: ["sleep", "60"] }] } }),
        ),
      ) as Pod;
      const sidecar = [...(pod.spec.initContainers ?? []), ...pod.spec.containers].find((c) => c.name === "microenforcer");
      assert.ok(sidecar, `injected: ${JSON.stringify(pod.spec)}`);
      assert.equal(sidecar.resources?.limits?.memory, "256Mi", "the upgraded release's sidecar size");
    } finally {
      await injector?.stop();
    }
  }
});
