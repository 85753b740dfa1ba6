/**
 * What every e2e scenario starts from: a real kube-apiserver + etcd on which
 * `kubectl apply -k manifests/` was run, the real OpenTelemetry Collector on loopback, the
 * injector running from the project's image (see injector.ts), and podman as the kubelet
 * of this machine (see ../infra/podman/pod.ts). Each test file starts its own.
 */
import { hostname } from "node:os";
import { buildKube, startControlPlane, type ControlPlane } from "../infra/kube/control-plane.ts";
import { buildCollector, startCollector, type CollectedLogRecord, type Collector } from "../infra/otelcol/collector.ts";
import { playPod, HOST_FROM_POD, type PlayedPod, type Pod } from "../infra/podman/pod.ts";
import { buildImages, type Images } from "../infra/podman/podman.ts";
import { freeLoopbackPorts } from "../infra/processes.ts";
import { eventually } from "./eventually.ts";
import { INJECTOR_NAMESPACE, pointWebhooksAt, startInjector, type Injector } from "./injector.ts";
import { kubectl, kubectlJson } from "./kube.ts";

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
  const [kubeBin, collectorBinary, images] = await Promise.all([buildKube(), buildCollector(), buildImages()]);
  const [cp, collector, [injectorPort]] = await Promise.all([startControlPlane({ binDir: kubeBin }), startCollector(collectorBinary), freeLoopbackPorts(1)]);
  const environment = new Environment(cp, collector, collectorBinary, images, injectorPort!, options.otlpProtocol ?? "http/protobuf");
  try {
    await kubectl(cp, ["apply", "-k", MANIFESTS]);
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

export class Environment {
  readonly cp: ControlPlane;
  collector: Collector;
  private readonly collectorBinary: string;
  readonly images: Images;
  /** Where the webhook configurations send the apiserver (paths /mutate and /exec). */
  readonly injectorUrl: string;
  readonly nodeName = hostname();
  private readonly injectorPort: number;
  private readonly otlpProtocol: OtlpProtocol;
  private injector: Injector | undefined;
  private readonly pods: PlayedPod[] = [];

  constructor(cp: ControlPlane, collector: Collector, collectorBinary: string, images: Images, injectorPort: number, otlpProtocol: OtlpProtocol) {
    this.cp = cp;
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
   * The injector, which hands every sidecar the OTLP settings that reach the collector.
   * `ownRecords`: the settings reach the collector from the injector itself instead (it runs
   * on the host's network, pods behind slirp4netns), for suites that run no pods and read
   * the injector's own records (its exec records).
   */
  async startInjector(options: { failClosed?: boolean; ownRecords?: boolean } = {}): Promise<void> {
    const port = this.otlpProtocol === "grpc" ? this.collector.ports.grpc : this.collector.ports.http;
    const host = options.ownRecords === true ? "127.0.0.1" : HOST_FROM_POD;
    const otelEnv = { OTEL_EXPORTER_OTLP_PROTOCOL: this.otlpProtocol, OTEL_EXPORTER_OTLP_ENDPOINT: `http://${host}:${port}` };
    this.injector = await startInjector(this.cp, { image: this.images.microenforcer, port: this.injectorPort, otelEnv, ...(options.failClosed !== undefined && { failClosed: options.failClosed }) });
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
    this.collector = await startCollector(this.collectorBinary, this.collector.ports);
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

  /** Runs the stored pod under podman; resolves once its sidecar watches the pod's processes. */
  async runPod(pod: Pod): Promise<PlayedPod> {
    const played = await playPod(pod, { nodeName: this.nodeName });
    this.pods.push(played);
    await eventually(`the sidecar of ${played.name} to watch`, async () => ((await played.logs(SIDECAR)).includes('"microenforcer.sensor.trigger"') ? true : undefined));
    return played;
  }

  /**
   * The collector's records of one pod (by its k8s.pod.name resource attribute) matching
   * `where`, once there are `count` of them or after the timeout.
   */
  async records(pod: PlayedPod, where: (record: CollectedLogRecord) => boolean, count = 1, timeoutMillis = 20_000): Promise<CollectedLogRecord[]> {
    return this.collector.waitForLogRecords(count, (record) => record.resource["k8s.pod.name"] === pod.name && where(record), timeoutMillis);
  }

  /** The same, as the collector has them right now: for asserting that none came. */
  async recordsSoFar(pod: PlayedPod, where: (record: CollectedLogRecord) => boolean): Promise<CollectedLogRecord[]> {
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
    for (const pod of this.pods) await pod.down();
    await this.stopInjector();
    await this.collector.stop();
    await this.cp.stop();
  }
}
