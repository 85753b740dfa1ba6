/** `microenforcer webhook`: the admission server and everything that keeps it serving. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import type { KubeConfig } from "@kubernetes/client-node";
import type { AdmissionDeps } from "./admission.ts";
import { clusterDnsOf } from "./config.ts";
import { keepCaBundle } from "./cluster/ca-bundle.ts";
import { keepSidecarIdentity } from "./cluster/sidecar-identity.ts";
import { ensureSigningKey } from "./cluster/signing-secret.ts";
import { startClusterState } from "./cluster/cluster-state.ts";
import { clusterRunsNativeSidecars, loadKubeConfig, ownImage, readPod } from "./cluster/kube.ts";
import { ensureTlsSecrets } from "./cluster/tls-secret.ts";
import { createEmitter } from "../microenforcer/emit/emitter.ts";
import { defaultExporter } from "../microenforcer/sidecar-contract.ts";
import type { ExecDeps } from "./exec-admission.ts";
import { injectorResource } from "./exec-record.ts";
import { createMetrics } from "./metrics.ts";
import { injectorConfigFrom, injectorOptions, policiesFrom, UsageError } from "./options.ts";
import { signerFrom } from "./policy-document.ts";
import { createAdmissionServer, replaceCertificate } from "./server.ts";
import { planTls, serviceDnsNames, type KeyPair } from "./tls/certificates.ts";
import { InputError } from "../policies/input-error.ts";

export const webhookUsage = `  webhook [--port 8443] [--cert-dir DIR | --self-signed] [--kubeconfig FILE] [--policy FILE]
          [--fail-closed] [--namespace NS] [--service NAME] [--webhook-config NAME] [--exec-webhook-config NAME] [--tls-secret NAME] [--ca-secret NAME] [--signing-secret NAME]
          [--tls-san NAME_OR_IP]... [--image IMAGE] [--kube-version 1.30] [--allow-ptrace]
          [--runtime-default-capabilities CHOWN,KILL,...] [--sidecar-memory 160Mi] [--sidecar-cpu 500m]
          [--sidecar-memory-request 64Mi] [--sidecar-cpu-request 20m] [--pod-labels app,team,...]
          [--cluster-name NAME] [--cloud-provider aws] [--cloud-platform aws_eks] [--cloud-region REGION] [--cloud-account-id ID]
          [--cluster-dns IP[,IP]] [--cluster-domain cluster.local]
        the injecting admission webhook (HTTPS, POST /mutate, POST /exec, /healthz, /readyz, /metrics)
`;

const log = (message: string) => process.stderr.write(`microenforcer webhook: ${message}\n`);
const HOUR = 60 * 60 * 1000;

function parse(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      ...injectorOptions,
      port: { type: "string", default: "8443" },
      host: { type: "string", default: "0.0.0.0" },
      "cert-dir": { type: "string" },
      "self-signed": { type: "boolean" },
      kubeconfig: { type: "string" },
      "fail-closed": { type: "boolean" },
      namespace: { type: "string" },
      service: { type: "string", default: "microenforcer-injector" },
      "webhook-config": { type: "string", default: "microenforcer-injector" },
      "exec-webhook-config": { type: "string", default: "microenforcer-exec" },
      "tls-secret": { type: "string", default: "microenforcer-injector-tls" },
      "ca-secret": { type: "string", default: "microenforcer-injector-ca" },
      "signing-secret": { type: "string", default: "microenforcer-injector-signing" },
      "tls-san": { type: "string", multiple: true, default: [] },
      "shutdown-delay": { type: "string", default: "0" },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be a port number, not '${values.port}'`);
  const shutdownDelay = Number(values["shutdown-delay"]);
  if (!(shutdownDelay >= 0)) throw new UsageError(`--shutdown-delay must be seconds, not '${values["shutdown-delay"]}'`);
  if (values["cert-dir"] !== undefined && values["self-signed"] === true) throw new UsageError("--cert-dir and --self-signed exclude each other");
  return { values, port, shutdownDelay };
}

/** A certificate source: the current pair, refreshed on a timer by whoever owns it. */
interface Certificates {
  current: KeyPair & { caBundle?: string };
  refresh(): Promise<boolean>;
}

function certDirSource(dir: string): Certificates {
  const read = () => {
    try {
      return { cert: readFileSync(join(dir, "tls.crt"), "utf8"), key: readFileSync(join(dir, "tls.key"), "utf8") };
    } catch (err) {
      throw new UsageError(`--cert-dir ${dir}: ${(err as Error).message}`);
    }
  };
  const source: Certificates = {
    current: read(),
    async refresh() {
      const next = read(); // cert-manager rewrites the files in place when it renews
      const changed = next.cert !== source.current.cert || next.key !== source.current.key;
      source.current = next;
      return changed;
    },
  };
  return source;
}

/** Without --image, sidecars run the injector's own image; the built-in default when it cannot be read. */
async function sidecarImage(kc: KubeConfig, fallback: string): Promise<string> {
  try {
    const image = await ownImage(kc, process.env);
    if (image !== undefined) {
      log(`sidecar image ${image} (this injector's own; --image overrides)`);
      return image;
    }
    log(`sidecar image ${fallback} (built in: POD_NAME and POD_NAMESPACE do not name this injector's pod; --image overrides)`);
  } catch (err) {
    log(`warning: cannot read this injector's own pod for its image (${(err as Error).message}); sidecars get ${fallback} (--image overrides)`);
  }
  return fallback;
}

export async function runWebhook(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`usage:\n${webhookUsage}`);
    return 0;
  }
  let options;
  try {
    options = parse(args);
  } catch (err) {
    process.stderr.write(`microenforcer webhook: ${(err as Error).message}\nusage:\n${webhookUsage}`);
    return 2;
  }
  const { values } = options;
  try {
    const kc = loadKubeConfig(values.kubeconfig, process.env);
    const config = injectorConfigFrom({ ...values, "injector-namespace": values["injector-namespace"] ?? values.namespace }, process.env);
    const namespace = config.injectorNamespace;
    if (kc !== undefined && values["kube-version"] === undefined) config.nativeSidecars = await clusterRunsNativeSidecars(kc);
    if (kc !== undefined && values.image === undefined) config.image = await sidecarImage(kc, config.image);
    if (config.otelWithheld.length > 0) {
      log(`not handed to sidecars: ${config.otelWithheld.join(", ")} (a pod's owner could read credentials from its pod spec); send the sidecars to an in-cluster collector that adds them`);
    }
    // Policy documents are signed for the sidecars to verify; without cluster access (no Secret to share a key in) they are plain.
    if (kc !== undefined) config.signer = signerFrom(await ensureSigningKey(kc, namespace, values["signing-secret"]));
    const metrics = createMetrics();
    const filePolicies = values.policy === undefined ? undefined : policiesFrom(values.policy);
    const state = kc === undefined ? undefined : await startClusterState(kc, { injectorNamespace: namespace, signer: config.signer }, metrics, log);

    const sans = values["tls-san"];
    const dnsNames = [...serviceDnsNames(values.service, namespace), ...sans.filter((s) => isIP(s) === 0)];
    const ips = sans.filter((s) => isIP(s) !== 0);
    let certificates: Certificates;
    if (values["cert-dir"] !== undefined) {
      certificates = certDirSource(values["cert-dir"]);
    } else if (kc !== undefined) {
      const refs = { namespace, serving: values["tls-secret"], ca: values["ca-secret"] };
      const ensure = async () => (await ensureTlsSecrets(kc, refs, dnsNames, ips)).material;
      certificates = {
        current: await ensure(),
        async refresh() {
          const next = await ensure();
          const changed = next.cert !== certificates.current.cert;
          certificates.current = next;
          return changed;
        },
      };
    } else {
      const material = planTls(undefined, dnsNames, new Date(), ips).material;
      const dir = mkdtempSync(join(tmpdir(), "microenforcer-webhook-"));
      writeFileSync(join(dir, "ca.crt"), material.caBundle);
      log(`no cluster access: serving a self-signed certificate; its CA is ${join(dir, "ca.crt")}`);
      certificates = { current: material, refresh: async () => false };
    }

    let ready = false;
    const deps: AdmissionDeps = {
      config,
      policies: () => filePolicies ?? state?.policies() ?? [],
      namespaceLabels: async (ns) => state?.namespaceLabels(ns),
      clusterDns: () => clusterDnsOf(config, state?.clusterDnsServers()),
      failClosed: values["fail-closed"] === true,
      metrics,
    };
    // Exec sessions are decided against the pod as stored, so only with cluster access; their
    // records go where the sidecars' go (the same OTEL_* settings, credentials included).
    const emitter = kc === undefined ? undefined : createEmitter({ exporter: defaultExporter(process.env), format: "json", resource: injectorResource(process.env) });
    const exec: ExecDeps | undefined =
      kc === undefined || state === undefined || emitter === undefined
        ? undefined
        : {
            pod: (ns, name) => readPod(kc, ns, name),
            policies: deps.policies,
            namespaceLabels: (ns) => state.namespaceLabels(ns),
            emit: emitter.emit,
            metrics,
          };
    const server = createAdmissionServer({ key: certificates.current.key, cert: certificates.current.cert, admission: deps, isReady: () => ready, log, ...(exec && { exec }) });
    const identityWatch = kc === undefined ? undefined : await keepSidecarIdentity(kc, namespace, { image: config.image, policyKey: config.signer?.publicKey }, log);
    const caBundle = certificates.current.caBundle;
    const currentBundle = () => certificates.current.caBundle ?? "";
    const caWatches =
      kc !== undefined && caBundle !== undefined
        ? [
            await keepCaBundle(kc, "MutatingWebhookConfiguration", values["webhook-config"], currentBundle, log),
            await keepCaBundle(kc, "ValidatingWebhookConfiguration", values["exec-webhook-config"], currentBundle, log),
          ]
        : [];
    const refresher = setInterval(
      () => {
        certificates.refresh().then(
          (changed) => {
            if (!changed) return;
            replaceCertificate(server, certificates.current.key, certificates.current.cert);
            log("serving a renewed certificate");
          },
          (err: unknown) => log(`certificate refresh failed: ${(err as Error).message}`),
        );
      },
      values["cert-dir"] !== undefined ? 60_000 : HOUR,
    );
    await server.listen({ host: values.host, port: options.port });
    ready = true;
    const address = server.server.address();
    log(`serving on ${typeof address === "object" && address !== null ? `${address.address}:${address.port}` : String(address)} (${kc === undefined ? "no cluster access" : "cluster access"}, ${config.nativeSidecars ? "native" : "classic"} sidecars, fail-${deps.failClosed ? "closed" : "open"})`);

    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    // Not ready first, so endpoints drop us before connections are refused.
    ready = false;
    await sleep(options.shutdownDelay * 1000);
    clearInterval(refresher);
    await server.close();
    await Promise.all(caWatches.map((watch) => watch.stop()));
    await identityWatch?.stop();
    await state?.stop();
    await emitter?.shutdown();
    log(`stopped on ${signal}`);
    return 0;
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`microenforcer webhook: invalid policy:\n${err.problems.map((p) => `  ${p}`).join("\n")}\n`);
      return 1;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`microenforcer webhook: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`microenforcer webhook: ${(err as Error).message}\n`);
    return 1;
  }
}
