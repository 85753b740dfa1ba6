/**
 * Pods as the scenarios see them: created through the API, run by the test node's kubelet,
 * and reached the way a user reaches them — `kubectl exec`, `kubectl logs`, the status the
 * kubelet reports.
 */
import type { ControlPlane, KubectlResult } from "../infra/kube/control-plane.ts";
import { eventually } from "./eventually.ts";
import { kubectl, kubectlJson } from "./kube.ts";

// The Pod as JSON: only the fields the scenarios read are typed.
export interface Container {
  name: string;
  image?: string;
  restartPolicy?: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  [field: string]: unknown;
}

export interface ContainerStatus {
  name: string;
  containerID?: string;
  restartCount: number;
  ready: boolean;
  started?: boolean;
  state: { running?: { startedAt: string }; waiting?: { reason?: string; message?: string }; terminated?: { exitCode: number; reason?: string } };
  lastState: { terminated?: { exitCode: number; reason?: string; startedAt?: string; finishedAt?: string } };
}

export interface Pod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    annotations?: Record<string, string>;
    labels?: Record<string, string>;
    ownerReferences?: Array<{ kind: string; name: string }>;
  };
  spec: { nodeName?: string; containers: Container[]; initContainers?: Container[]; shareProcessNamespace?: boolean; [field: string]: unknown };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: Array<{ type: string; status: string }>;
    containerStatuses?: ContainerStatus[];
    initContainerStatuses?: ContainerStatus[];
    ephemeralContainerStatuses?: ContainerStatus[];
  };
}

export interface RunningPod {
  name: string;
  namespace: string;
  /** `kubectl exec` into a container: its output and the command's exit code. */
  exec(container: string, args: string[]): Promise<KubectlResult>;
  /** `kubectl logs` of a container (stdout and stderr as the runtime interleaved them). */
  logs(container: string, options?: { previous?: boolean }): Promise<string>;
  /** The pod as the API has it now. */
  get(): Promise<Pod>;
  /** A container's status (app, init, sidecar or ephemeral) as the kubelet reports it now. */
  status(container: string): Promise<ContainerStatus | undefined>;
}

/** Why a container will not start by itself: the kubelet's waiting reasons that do not clear. */
const STUCK = new Set(["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "CrashLoopBackOff", "CreateContainerError", "CreateContainerConfigError", "RunContainerError", "InvalidImageName"]);

/** The pod, once the kubelet runs all its containers; fails fast if one cannot start. */
export async function waitForRunning(cp: ControlPlane, namespace: string, name: string, timeoutMillis = 90_000): Promise<RunningPod> {
  const pod = podHandle(cp, namespace, name);
  await eventually(
    `pod ${namespace}/${name} to run`,
    async () => {
      const current = await pod.get();
      const statuses = allStatuses(current);
      const stuck = statuses.find((status) => STUCK.has(status.state.waiting?.reason ?? ""));
      if (stuck !== undefined) throw new Error(`pod ${namespace}/${name}: container ${stuck.name} is ${stuck.state.waiting?.reason}: ${stuck.state.waiting?.message ?? ""}`);
      if (current.status?.phase === "Failed") throw new Error(`pod ${namespace}/${name} failed: ${JSON.stringify(current.status)}`);
      const running = current.status?.phase === "Running" && statuses.length > 0 && statuses.every((status) => status.state.running !== undefined || status.state.terminated !== undefined);
      return running ? true : undefined;
    },
    timeoutMillis,
  );
  return pod;
}

export function podHandle(cp: ControlPlane, namespace: string, name: string): RunningPod {
  const get = async () => (await kubectlJson(cp, ["--namespace", namespace, "get", "pod", name])) as Pod;
  return {
    name,
    namespace,
    exec: (container, args) => cp.kubectl(["--namespace", namespace, "exec", name, "--container", container, "--", ...args]),
    logs: (container, options = {}) => kubectl(cp, ["--namespace", namespace, "logs", name, "--container", container, ...(options.previous === true ? ["--previous"] : [])]),
    get,
    status: async (container) => allStatuses(await get()).find((status) => status.name === container),
  };
}

function allStatuses(pod: Pod): ContainerStatus[] {
  const status = pod.status ?? {};
  return [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? []), ...(status.ephemeralContainerStatuses ?? [])];
}
