/**
 * Smoke check of a one-node cluster (not part of the mocha run):
 *   PATH=node_modules/.bin:$PATH node test/infra/node/smoke.ts
 * Builds or reuses everything, starts etcd + kube-apiserver + kube-controller-manager +
 * kube-scheduler and a node (containerd + kubelet), then: `kubectl run` of the locally
 * built app image (scheduled, started by the kubelet), `kubectl exec` and `kubectl logs`
 * through apiserver → kubelet → containerd, the pod reaching this machine's address on the
 * pod network, and a Job run to completion. Exits non-zero on the first failed check.
 */
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { buildKube, startControlPlane, type ControlPlane } from "../kube/control-plane.ts";
import { buildImages } from "../podman/podman.ts";
import { buildNode, startNode, type Node } from "./node.ts";

const step = (what: string, started: number) => console.log(`[${((Date.now() - started) / 1000).toFixed(2)} s] ${what}`);

async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const result = await cp.kubectl(args, input === undefined ? {} : { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result.stdout;
}

let started = Date.now();
const [kubeBinDir, binDir, images] = await Promise.all([buildKube(), buildNode(), buildImages()]);
step(`binaries in ${kubeBinDir} and ${binDir}; images ${images.app}, ${images.pause}`, started);

started = Date.now();
const cp = await startControlPlane({ binDir: kubeBinDir, controllers: true });
step(`control plane up at ${cp.server} (${JSON.stringify(cp.startup)} ms)`, started);
let node: Node | undefined;
try {
  started = Date.now();
  node = await startNode(cp, { kubeBinDir, binDir, imageArchives: images.archives, archivesLock: images.archivesLock, sandboxImage: images.pause });
  step(`node ${node.name} Ready, this machine at ${node.hostAddress} (${JSON.stringify(node.startup)} ms)`, started);

  started = Date.now();
  await kubectl(cp, ["create", "namespace", "smoke"]);
  await kubectl(cp, ["run", "app", "-n", "smoke", `--image=${images.app}`, "--command", "--", "sh", "-c", "echo hello from the app; exec sleep 3600"]);
  await kubectl(cp, ["wait", "-n", "smoke", "pod/app", "--for=condition=Ready", "--timeout=60s"]);
  step("kubectl run: scheduled, started by the kubelet, Ready", started);

  started = Date.now();
  const exec = await kubectl(cp, ["exec", "-n", "smoke", "app", "--", "sh", "-c", "echo exec as $(id -u) in $(hostname)"]);
  if (exec.trim() !== "exec as 0 in app") throw new Error(`kubectl exec said ${JSON.stringify(exec)}`);
  const logs = await kubectl(cp, ["logs", "-n", "smoke", "app"]);
  if (logs.trim() !== "hello from the app") throw new Error(`kubectl logs said ${JSON.stringify(logs)}`);
  step(`kubectl exec (${exec.trim()}) and kubectl logs`, started);

  started = Date.now();
  await checkHostFromPod(cp, node);
  step(`the pod reaches ${node.hostAddress}`, started);

  started = Date.now();
  await kubectl(cp, ["create", "job", "done", "-n", "smoke", `--image=${images.app}`, "--", "true"]);
  await kubectl(cp, ["wait", "-n", "smoke", "job/done", "--for=condition=Complete", "--timeout=60s"]);
  step("a Job ran to completion", started);
} catch (error) {
  console.error((error as Error).message);
  for (const log of [cp.logs.controllerManager, cp.logs.scheduler, node?.logs.containerd, node?.logs.kubelet]) {
    if (log === undefined) continue;
    console.error(`--- ${log} (tail)\n${(await readFile(log, "utf8").catch(() => "")).split("\n").slice(-30).join("\n")}`);
  }
  process.exitCode = 1;
} finally {
  started = Date.now();
  await node?.stop();
  await cp.stop();
  step("stopped", started);
}

/** An HTTP server on this machine's pod-network address, fetched by busybox wget in the pod. */
async function checkHostFromPod(cp: ControlPlane, node: Node): Promise<void> {
  const server = createServer((_, res) => res.end("host seen\n")).listen(0, node.hostAddress);
  await once(server, "listening");
  try {
    const url = `http://${node.hostAddress}:${(server.address() as AddressInfo).port}/`;
    const body = await kubectl(cp, ["exec", "-n", "smoke", "app", "--", "wget", "-q", "-O", "-", url]);
    if (body !== "host seen\n") throw new Error(`wget ${url} in the pod said ${JSON.stringify(body)}`);
  } finally {
    server.close();
  }
}
