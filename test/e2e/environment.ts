/**
 * What every e2e scenario starts from: a one-node cluster on this machine — kube-apiserver,
 * etcd, kube-controller-manager, kube-scheduler, and a node (kubelet + containerd, see
 * ../infra/node/node.ts) running the locally built images — on which the manifests were
 * applied; its cluster DNS (CoreDNS on the kubelet's clusterDNS address, named by the
 * kube-dns Service), which sends www.google.com to this machine's HTTPS server (www.ts);
 * the real OpenTelemetry Collector where pods reach this machine; and the injector running
 * from the project's image (see injector.ts). Each test file starts its own.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { buildCoreDns, startCoreDns, type CoreDns } from "../infra/coredns/coredns.ts";
import { buildKube, startControlPlane, type ControlPlane } from "../infra/kube/control-plane.ts";
import { buildNode, startNode, type Node } from "../infra/node/node.ts";
import { buildCollector, startCollector, type CollectedLogRecord, type Collector } from "../infra/otelcol/collector.ts";
import { buildImages, type Images } from "../infra/podman/podman.ts";
import { freeTcpPorts } from "../infra/processes.ts";
import { eventually } from "./eventually.ts";
import { INJECTOR_DEPLOYMENT, INJECTOR_NAMESPACE, pointWebhooksAt, startInjector, type Injector } from "./injector.ts";
import { kubectl, kubectlJson } from "./kube.ts";
import { waitForRunning, type Pod, type RunningPod } from "./pods.ts";
import { startWww, WWW, type Www } from "./www.ts";

const MANIFESTS = new URL("../../manifests/", import.meta.url).pathname;
/** The sidecar's container name and the pod annotations of DESIGN.md (webhook/keys.ts). */
export const SIDECAR = "microenforcer";
export const POLICY_ANNOTATION = "microenforcer.dev/policy";
export const POLICY_DOCUMENT_ANNOTATION = "microenforcer.dev/policy-document";

/** The RuntimePolicy the injector embedded in the pod (the payload of its signed document). */
type EmbeddedPolicy = { metadata: { name: string; generation?: number }; spec: { forensics: Record<string, boolean> } };
export function embeddedPolicy(pod: Pod): EmbeddedPolicy | undefined {
  const document = pod.metadata.annotations?.[POLICY_DOCUMENT_ANNOTATION];
  if (document === undefined) return undefined;
  const parsed = JSON.parse(document) as { kind?: string; payload?: string };
  return parsed.kind === "SignedRuntimePolicy" ? (JSON.parse(parsed.payload!) as { policy: EmbeddedPolicy }).policy : (parsed as unknown as EmbeddedPolicy);
}

/** How the sidecars export to the collector. */
export type OtlpProtocol = "http/protobuf" | "grpc";

/** Builds what is missing (minutes on a fresh machine, seconds after), then starts everything. */
async function startEnvironment(options: { otlpProtocol?: OtlpProtocol } = {}): Promise<Environment> {
  const [kubeBin, nodeBin, collectorBinary, corednsBinary, images] = await Promise.all([buildKube(), buildNode(), buildCollector(), buildCoreDns(), buildImages()]);
  const cp = await startControlPlane({ binDir: kubeBin, controllers: true });
  let node: Node | undefined;
  let dns: CoreDns | undefined;
  let www: Www | undefined;
  let collector: Collector | undefined;
  try {
    node = await startNode(cp, { kubeBinDir: kubeBin, binDir: nodeBin, imageArchives: images.archives, archivesLock: images.archivesLock, sandboxImage: images.pause });
    dns = await startCoreDns(corednsBinary, node.clusterDns.address, { [WWW]: node.hostAddress });
    www = await startWww(node.hostAddress, images.testCa);
    collector = await startCollector(collectorBinary, undefined, node.hostAddress);
  } catch (error) {
    await www?.stop();
    await dns?.stop();
    await node?.stop();
    await cp.stop();
    throw error;
  }
  const [injectorPort] = await freeTcpPorts(1);
  const environment = new Environment(cp, node, { dns, www }, collector, collectorBinary, images, injectorPort!, options.otlpProtocol ?? "http/protobuf");
  try {
    await applyManifests(cp);
    await createKubeDnsService(cp, node.clusterDns.address);
    await kubectl(cp, ["wait", "--for=condition=established", "crd/runtimepolicies.microenforcer.dev", "--timeout=60s"]);
    await pointWebhooksAt(cp, environment.injectorUrl);
    await environment.startInjector();
    await environment.caBundle();
  } catch (error) {
    await environment.stop();
    throw error;
  }
  return environment;
}

/**
 * The calling suite's environment: started before its tests (the first run on a machine
 * builds the images, the collector and the control plane), with a namespace labelled for
 * injection handed to `setup`; stopped after them; its logs printed after each failed test.
 */
export function suiteEnvironment(
  namespaceName: string,
  setup: (env: Environment, namespace: string) => Promise<void>,
  options: { otlpProtocol?: OtlpProtocol } = {},
): void {
  let env: Environment | undefined;
  before(async function () {
    this.timeout(900_000);
    env = await startEnvironment(options);
    await setup(env, await env.createNamespace(namespaceName));
  });
  after(async () => env?.stop());
  afterEach(async function () {
    if (this.currentTest?.state === "failed") console.log(await env?.logs());
  });
}

/**
 * `kubectl apply -k manifests/` with one change: the injector's Deployment at 0 replicas.
 * The injector runs beside the cluster instead (injector.ts says why); its Deployment's
 * pods would only wait for an image named `microenforcer:0.1.0` that nothing can pull.
 */
async function applyManifests(cp: ControlPlane): Promise<void> {
  const overlay = await mkdtemp(join(tmpdir(), "manifests-"));
  try {
    // kustomize takes bases by relative path only.
    const kustomization = { resources: [relative(overlay, MANIFESTS)], replicas: [{ name: INJECTOR_DEPLOYMENT, count: 0 }] };
    await writeFile(join(overlay, "kustomization.yaml"), JSON.stringify(kustomization));
    await kubectl(cp, ["apply", "-k", overlay]);
  } finally {
    await rm(overlay, { recursive: true, force: true });
  }
}

/** The kube-dns Service as a cluster's DNS add-on has it: its ClusterIP is the kubelet's clusterDNS, and the injector reads it. */
async function createKubeDnsService(cp: ControlPlane, clusterIP: string): Promise<void> {
  const service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns" } },
    spec: {
      clusterIP,
      selector: { "k8s-app": "kube-dns" },
      ports: [
        { name: "dns", port: 53, protocol: "UDP" },
        { name: "dns-tcp", port: 53, protocol: "TCP" },
      ],
    },
  };
  await kubectl(cp, ["create", "-f", "-"], JSON.stringify(service));
}

export class Environment {
  readonly cp: ControlPlane;
  readonly node: Node;
  /** The cluster DNS and the HTTPS server it sends www.google.com to. */
  readonly internet: { dns: CoreDns; www: Www };
  collector: Collector;
  private readonly collectorBinary: string;
  readonly images: Images;
  /** Where the webhook configurations send the apiserver (paths /mutate and /exec). */
  readonly injectorUrl: string;
  readonly nodeName: string;
  private readonly injectorPort: number;
  private readonly otlpProtocol: OtlpProtocol;
  private injector: Injector | undefined;
  private readonly pods: RunningPod[] = [];

  constructor(cp: ControlPlane, node: Node, internet: Environment["internet"], collector: Collector, collectorBinary: string, images: Images, injectorPort: number, otlpProtocol: OtlpProtocol) {
    this.cp = cp;
    this.node = node;
    this.internet = internet;
    this.nodeName = node.name;
    this.collector = collector;
    this.collectorBinary = collectorBinary;
    this.images = images;
    this.injectorPort = injectorPort;
    this.otlpProtocol = otlpProtocol;
    this.injectorUrl = `https://127.0.0.1:${injectorPort}`;
  }

  kubectl(args: string[], input?: string): Promise<string> {
    return kubectl(this.cp, args, input);
  }

  /**
   * The injector, which hands every sidecar the OTLP settings that reach the collector; its
   * own records (exec records) reach it there too, from the host's network.
   */
  async startInjector(options: { failClosed?: boolean } = {}): Promise<void> {
    const port = this.otlpProtocol === "grpc" ? this.collector.ports.grpc : this.collector.ports.http;
    const otelEnv = { OTEL_EXPORTER_OTLP_PROTOCOL: this.otlpProtocol, OTEL_EXPORTER_OTLP_ENDPOINT: `http://${this.node.hostAddress}:${port}` };
    this.injector = await startInjector(this.cp, { image: this.images.microenforcer, port: this.injectorPort, otelEnv, ...options });
  }

  async stopInjector(): Promise<void> {
    await this.injector?.stop();
    this.injector = undefined;
  }

  /** The caBundle in the webhook configuration, once the injector has patched it in. */
  caBundle(): Promise<string> {
    return eventually("the injector to patch its caBundle in", async () => {
      const config = (await kubectlJson(this.cp, ["get", "mutatingwebhookconfiguration", "microenforcer-injector"])) as { webhooks: Array<{ clientConfig: { caBundle?: string } }> };
      const bundles = new Set(config.webhooks.map((webhook) => webhook.clientConfig.caBundle));
      const [bundle] = bundles;
      return bundles.size === 1 && bundle ? bundle : undefined;
    });
  }

  /** The CA certificate of the injector's TLS Secret (base64, as in the Secret). */
  async injectorCa(): Promise<string> {
    const secret = (await kubectlJson(this.cp, ["--namespace", INJECTOR_NAMESPACE, "get", "secret", "microenforcer-injector-tls"])) as { data: Record<string, string> };
    return secret.data["ca.crt"]!;
  }

  /** Stops the collector; startCollector() brings it back on the same ports. */
  async stopCollector(): Promise<void> {
    await this.collector.stop();
  }

  async startCollector(): Promise<void> {
    this.collector = await startCollector(this.collectorBinary, this.collector.ports, this.node.hostAddress);
  }

  /** A new namespace labelled for injection, as the README tells users to do. */
  async createNamespace(prefix: string): Promise<string> {
    const name = `${prefix}-${Math.random().toString(36).slice(2, 7)}`;
    await this.kubectl(["create", "namespace", name]);
    await this.kubectl(["label", "namespace", name, "microenforcer.dev/injection=enabled"]);
    return name;
  }

  /**
   * Creates or updates a RuntimePolicy, and resolves once the injector gives it to new pods
   * of `namespace` that name it (its informer follows the API a moment later).
   */
  async applyPolicy(name: string, spec: object, namespace: string): Promise<void> {
    const policy = { apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name }, spec };
    const applied = JSON.parse(await this.kubectl(["apply", "-o", "json", "-f", "-"], JSON.stringify(policy))) as { metadata: { generation: number } };
    const { generation } = applied.metadata;
    const probe = { apiVersion: "v1", kind: "Pod", metadata: { generateName: "probe-", namespace, annotations: { [POLICY_ANNOTATION]: name } }, spec: { containers: [{ name: "probe", image: "probe" }] } };
    await eventually(`the injector to hand out RuntimePolicy ${name} generation ${generation}`, async () => {
      const answer = JSON.parse(await this.kubectl(["create", "--dry-run=server", "-o", "json", "-f", "-"], JSON.stringify(probe))) as Pod;
      return embeddedPolicy(answer)?.metadata.generation === generation ? true : undefined;
    });
  }

  /** Creates the pod through the API; returns it as stored (after admission). */
  async createPod(pod: object): Promise<Pod> {
    return JSON.parse(await this.kubectl(["create", "-o", "json", "-f", "-"], JSON.stringify(pod))) as Pod;
  }

  async getPod(namespace: string, name: string): Promise<Pod> {
    return (await kubectlJson(this.cp, ["--namespace", namespace, "get", "pod", name])) as Pod;
  }

  /**
   * Waits for the node to run a pod created through the API; resolves once its sidecar
   * watches the pod's processes.
   */
  async runPod(pod: Pod): Promise<RunningPod> {
    const running = await waitForRunning(this.cp, pod.metadata.namespace, pod.metadata.name);
    this.pods.push(running);
    await eventually(`the sidecar of ${running.name} to watch`, async () => ((await running.logs(SIDECAR)).includes('"microenforcer.sensor.trigger"') ? true : undefined));
    return running;
  }

  /**
   * The collector's records of one pod (by its k8s.pod.name resource attribute) matching
   * `where`, once there are `count` of them or after the timeout.
   */
  async records(pod: RunningPod, where: (record: CollectedLogRecord) => boolean, count = 1, timeoutMillis = 20_000): Promise<CollectedLogRecord[]> {
    return this.collector.waitForLogRecords(count, (record) => record.resource["k8s.pod.name"] === pod.name && where(record), timeoutMillis);
  }

  /** The same, as the collector has them right now: for asserting that none came. */
  async recordsSoFar(pod: RunningPod, where: (record: CollectedLogRecord) => boolean): Promise<CollectedLogRecord[]> {
    return (await this.collector.readLogRecords()).filter((record) => record.resource["k8s.pod.name"] === pod.name && where(record));
  }

  /** The injector's log and the end of each pod's sidecar log, to explain a failure. */
  async logs(): Promise<string> {
    const parts = [`--- injector\n${(await this.injector?.logs()) ?? "(not running)"}`];
    for (const pod of this.pods) {
      const sidecar = await pod.logs(SIDECAR).catch((error: unknown) => String(error));
      parts.push(`--- sidecar of ${pod.name} (last 40 lines)\n${sidecar.trimEnd().split("\n").slice(-40).join("\n")}`);
    }
    return parts.join("\n");
  }

  async stop(): Promise<void> {
    await this.stopInjector();
    await this.node.stop();
    await this.internet.www.stop();
    await this.internet.dns.stop();
    await this.collector.stop();
    await this.cp.stop();
  }
}
