/**
 * The injector as manifests/ deploy it, run by podman on this machine: the project's
 * image, the Deployment's args and security settings, and the microenforcer-injector
 * ServiceAccount — its token comes from the TokenRequest API and sits where in-cluster
 * clients look, so the RBAC of manifests/base/rbac.yaml is what the injector works with.
 *
 * It runs beside the test cluster rather than on its node because nothing here routes
 * Service traffic (no kube-proxy; the service CIDR is configuration only): the apiserver
 * calls the webhook through its Service, and the injector calls the apiserver through the
 * `kubernetes` Service. So the injector uses the host's network and listens on a loopback
 * port, and pointWebhooksAt() sends the apiserver there by URL instead of through the
 * Service.
 */
import { readFileSync } from "node:fs";
import { chmod, copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import type { ControlPlane } from "../infra/kube/control-plane.ts";
import { containerLogs, podman, podmanOk } from "../infra/podman/podman.ts";
import { eventually } from "./eventually.ts";
import { kubectl, kubectlJson } from "./kube.ts";

export const INJECTOR_NAMESPACE = "microenforcer-system";
export const INJECTOR_DEPLOYMENT = "microenforcer-injector";
const SERVICE_ACCOUNT = "microenforcer-injector";
const WEBHOOK_CONFIGURATION = "microenforcer-injector";
export const EXEC_WEBHOOK_CONFIGURATION = "microenforcer-exec";
const DEPLOYMENT = new URL("../../manifests/base/deployment.yaml", import.meta.url);

export interface InjectorOptions {
  image: string;
  port: number;
  /** OTEL_* variables the injector hands to every sidecar (the Deployment's envFrom). */
  otelEnv: Record<string, string>;
  failClosed?: boolean;
  /** The injector container's args; default: manifests/base/deployment.yaml's. */
  args?: string[];
}

export interface Injector {
  logs(): Promise<string>;
  stop(): Promise<void>;
}

/** The args of the Deployment's injector container. */
function deploymentArgs(): string[] {
  const deployment = parse(readFileSync(DEPLOYMENT, "utf8")) as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
  return deployment.spec.template.spec.containers[0]!.args;
}

/** Starts the injector and waits until it serves. */
export async function startInjector(cp: ControlPlane, options: InjectorOptions): Promise<Injector> {
  const secrets = await serviceAccountFiles(cp);
  const name = `e2e-injector-${options.port}`;
  const env = { POD_NAMESPACE: INJECTOR_NAMESPACE, KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: new URL(cp.server).port, ...options.otelEnv };
  await podmanOk([
    "run", "--detach", "--name", name, "--network", "host",
    // The Deployment's securityContext.
    "--user", "65532:65532", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    ...Object.entries(env).flatMap(([key, value]) => ["--env", `${key}=${value}`]),
    "--volume", `${secrets}:/var/run/secrets/kubernetes.io/serviceaccount:ro`,
    options.image,
    // Later flags win: loopback instead of the Service, and the sidecar image built here.
    ...(options.args ?? deploymentArgs()),
    "--host", "127.0.0.1", "--port", String(options.port), "--tls-san", "127.0.0.1", "--shutdown-delay", "0", "--image", options.image,
    ...(options.failClosed === true ? ["--fail-closed"] : []),
  ]);
  const logs = () => containerLogs(name);
  const stop = async () => {
    await podman(["rm", "--force", "--time", "10", name]);
    await rm(secrets, { recursive: true, force: true });
  };
  try {
    await eventually("the injector to serve", async () => {
      if (/serving on/.test(await logs())) return true;
      const state = (await podmanOk(["inspect", "--format", "{{.State.Status}}", name])).trim();
      if (state !== "running") throw new Error(`the injector is ${state}`);
      return undefined;
    });
  } catch (error) {
    const log = await logs().catch(() => "");
    await stop();
    throw new Error(`${(error as Error).message}; its log:\n${log}`, { cause: error });
  }
  return { logs, stop };
}

/** What the kubelet mounts for a ServiceAccount: a token, the cluster CA, the namespace. */
async function serviceAccountFiles(cp: ControlPlane): Promise<string> {
  const token = await kubectl(cp, ["create", "token", SERVICE_ACCOUNT, "--namespace", INJECTOR_NAMESPACE, "--duration", "2h"]);
  const dir = await mkdtemp(join(tmpdir(), "injector-sa-"));
  await writeFile(join(dir, "token"), token.trim());
  await writeFile(join(dir, "namespace"), INJECTOR_NAMESPACE);
  await copyFile(cp.caFile, join(dir, "ca.crt"));
  // The injector runs as 65532: it must read what root wrote here.
  for (const file of ["token", "namespace", "ca.crt"]) await chmod(join(dir, file), 0o644);
  await chmod(dir, 0o755);
  return dir;
}

/**
 * Points the webhooks of the manifests' MutatingWebhookConfiguration (POST /mutate) and of
 * the exec ValidatingWebhookConfiguration (POST /exec) at the injector's loopback address
 * instead of its Service, keeping any caBundle already patched in.
 */
export async function pointWebhooksAt(cp: ControlPlane, baseUrl: string): Promise<void> {
  const configurations: Array<[string, string, string]> = [
    ["mutatingwebhookconfiguration", WEBHOOK_CONFIGURATION, "/mutate"],
    ["validatingwebhookconfiguration", EXEC_WEBHOOK_CONFIGURATION, "/exec"],
  ];
  for (const [kind, name, path] of configurations) {
    const { webhooks } = (await kubectlJson(cp, ["get", kind, name])) as { webhooks: Array<{ clientConfig: { caBundle?: string } }> };
    const patch = webhooks.map((webhook, index) => ({
      op: "replace",
      path: `/webhooks/${index}/clientConfig`,
      value: { url: `${baseUrl}${path}`, ...(webhook.clientConfig.caBundle === undefined ? {} : { caBundle: webhook.clientConfig.caBundle }) },
    }));
    await kubectl(cp, ["patch", kind, name, "--type=json", "-p", JSON.stringify(patch)]);
  }
}
