/**
 * The scenarios' workload, `test-nginx`: an HTTPS server on the pod's loopback (container
 * `nginx`) and a second container (`app`) that `kubectl exec` runs a client in. Both run as UID 1000, so the injector runs the sidecar with
 * that UID and the sidecar may read those processes' /proc entries (DESIGN.md: Privileges).
 */
import type { KubectlResult } from "../infra/kube/control-plane.ts";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { POLICY_ANNOTATION, type Environment } from "./environment.ts";
import type { RunningPod } from "./pods.ts";

export const HTTPS_PORT = 8443;
const APP_UID = 1000;

export function testNginx(namespace: string, appImage: string, annotations: Record<string, string> = {}): object {
  return {
    apiVersion: "v1",
    kind: "Pod",
    // generateName: a suite runs several.
    metadata: { generateName: "test-nginx-", namespace, labels: { app: "test-nginx" }, annotations },
    spec: {
      securityContext: { runAsUser: APP_UID, runAsGroup: APP_UID },
      containers: [
        { name: "nginx", image: appImage, command: ["https-server", "-listen", `127.0.0.1:${HTTPS_PORT}`] },
        { name: "app", image: appImage, command: ["sleep", "3600"] },
      ],
    },
  };
}

/** The client's argv: busybox wget over HTTPS to the nginx container, on the pod's loopback. */
export function clientArgs(path: string): string[] {
  return ["wget", "-q", "-O", "-", "--no-check-certificate", `https://127.0.0.1:${HTTPS_PORT}${path}`];
}

/** Execs the client into the app container (it takes the server's 2 s delay). */
export function runClient(pod: RunningPod, path: string): Promise<KubectlResult> {
  return pod.exec("app", clientArgs(path));
}

/**
 * The exec record of a client session's root: started from outside the pod's PID namespace
 * (PPID 0, as `kubectl exec` sessions are: no process.parent_pid), running wget.
 */
export function isClientSession(r: CollectedLogRecord): boolean {
  return r.eventName === "microenforcer.process.exec" && r.attributes["process.parent_pid"] === undefined && r.attributes["microenforcer.process.comm"] === "wget";
}

/** A connection record of a client to the HTTPS server. */
export function isClientConnection(r: CollectedLogRecord): boolean {
  return (
    r.eventName === "microenforcer.network.connection" &&
    r.attributes["microenforcer.network.direction"] === "outbound" &&
    r.attributes["network.peer.port"] === HTTPS_PORT
  );
}

/** test-nginx created through the API under the named RuntimePolicy, and running. */
export async function startTestNginx(env: Environment, namespace: string, policy: string): Promise<RunningPod> {
  return env.runPod(await env.createPod(testNginx(namespace, env.images.app, { [POLICY_ANNOTATION]: policy })));
}
