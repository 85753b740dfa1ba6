/**
 * Test helper: a node on this machine for a control plane of ../kube/control-plane.ts —
 * containerd and the CNI plugins built by build.sh here, Debian's runc, and the kubelet
 * built by ../kube/build.sh, with the configuration test/infra/README.md explains setting
 * by setting. Everything a node keeps lives under one temp dir, with its own bridge and
 * its own cgroup, so several nodes (of several test runs) can share the machine.
 *
 * Network: a bridge of its own (me-nodeN, 10.244.N.0/24), made before anything starts;
 * this machine is 10.244.N.1 on it (`hostAddress`), which is also the kubelet's address.
 * The CNI bridge plugin gives each pod an address there and no default route: pods reach
 * this machine's address on the bridge, and nothing beyond it. DNS: the kubelet's
 * clusterDNS is 10.0.0.(10+N), an address in the control plane's Service range that the
 * node puts on its bridge and routes pods to (`clusterDns`): the kube-dns Service's
 * ClusterIP in a real cluster, here where the test runs its cluster DNS (there is no
 * kube-proxy). Nothing answers there until a test does; a lookup is refused at once.
 *
 * Cgroups: containerd, its shims and every container live under the node's own cgroup
 * (the kubelet's cgroupRoot, `/kube-node-XXXXXX` in each hierarchy), so stop() finds and
 * kills all of it, whatever state the node is in.
 */
import { execFile, type ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { kubeconfig, SERVICE_RANGE, type ControlPlane } from "../kube/control-plane.ts";
import { freeTcpPorts, startProcess, stopProcess, waitUntil } from "../processes.ts";
import { cgroupProcsFiles, makeCgroup, removeCgroup } from "./cgroups.ts";

const run = promisify(execFile);
const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;
/** Debian's runc: crun refuses this machine's hybrid cgroups. */
const RUNC = "/usr/sbin/runc";
/** What every pod network of these nodes is carved from, one /24 per node. */
const POD_NETWORKS = "10.244";

/** Builds (or reuses) containerd, its runc shim, ctr and the CNI plugins; returns their directory. */
export async function buildNode(): Promise<string> {
  const { stdout } = await run(BUILD_SCRIPT, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split("\n").at(-1) ?? "";
}

export interface NodeOptions {
  /** The directory buildKube() returns (the kubelet). */
  kubeBinDir: string;
  /** The directory buildNode() returns. */
  binDir: string;
  /** docker-archive files imported into containerd before the kubelet starts (no registry here). */
  imageArchives: string[];
  /** The pod sandbox image, one of those archives' images. */
  sandboxImage: string;
  /** A file the image builder holds locked while it replaces archives; read under a shared lock. */
  archivesLock: string;
  /** Default: this machine's hostname. */
  name?: string;
  /** How long to wait for containerd and then for the node to be Ready; default 120 s each. */
  timeoutMillis?: number;
}

export interface Node {
  name: string;
  /** This machine's address on the pod network: where pods reach what the test runs. */
  hostAddress: string;
  /** The kubelet's clusterDNS and clusterDomain: where pods resolve names, once a test runs a DNS server at `address` (this machine's). */
  clusterDns: { address: string; domain: string };
  dir: string;
  logs: { containerd: string; kubelet: string };
  /** Wall-clock milliseconds of each start-up step. */
  startup: { network: number; containerd: number; images: number; kubelet: number };
  /** ctr against this node's containerd, in the kubelet's namespace; its stdout. */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startNode(cp: ControlPlane, options: NodeOptions): Promise<Node> {
  const name = options.name ?? hostname().toLowerCase();
  const timeoutMillis = options.timeoutMillis ?? 120_000;
  const dir = await mkdtemp(join(tmpdir(), "kube-node-"));
  // mkdtemp makes it 0700; containers running as other users mount volumes from here.
  await chmod(dir, 0o755);
  const cgroupRoot = `/${basename(dir)}`;
  const logs = { containerd: join(dir, "containerd.log"), kubelet: join(dir, "kubelet.log") };
  const socket = join(dir, "containerd.sock");
  const state = join(dir, "containerd", "state");
  const ctr = async (args: string[]) => (await run(join(options.binDir, "ctr"), ["--address", socket, "--namespace", "k8s.io", ...args], { maxBuffer: 16 * 1024 * 1024 })).stdout;
  const children: ChildProcess[] = [];
  let bridge: string | undefined;
  // A test run that dies without calling stop() must not leave the daemons behind.
  const killAll = () => children.forEach((child) => child.kill("SIGKILL"));
  process.once("exit", killAll);
  const stop = async () => {
    process.off("exit", killAll);
    // The kubelet first, so nothing restarts what goes next: containerd, its shims and
    // every container, all in the node's cgroup.
    for (const child of children.slice(1)) await stopProcess(child);
    await removeCgroup(cgroupRoot);
    await Promise.all(children.map((child) => stopProcess(child)));
    await removeShimSockets(state);
    await unmountUnder(dir);
    if (bridge !== undefined) await run("ip", ["link", "delete", bridge]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    let mark = Date.now();
    const network = await createBridge();
    bridge = network.bridge;
    const { hostAddress, clusterDns } = network;
    await writeFile(join(dir, "cni.conflist"), JSON.stringify(cniConfig(network, join(dir, "cni-ipam"))));
    const networkMillis = Date.now() - mark;

    mark = Date.now();
    await makeCgroup(`${cgroupRoot}/runtime`);
    // Every registry resolves to a closed port here: the images are imported, and a pod
    // naming any other image fails at once instead of sending traffic off this machine.
    await mkdir(join(dir, "registries", "_default"), { recursive: true });
    await writeFile(join(dir, "registries", "_default", "hosts.toml"), 'server = "http://127.0.0.1:1"\n');
    const containerdConfig = join(dir, "containerd.toml");
    await writeFile(containerdConfig, containerdToml({ dir, socket, state, binDir: options.binDir, sandboxImage: options.sandboxImage }));
    // Joins the node's cgroup before it becomes containerd, so its shims (and their
    // children, until the kubelet's cgroups take them) start there too.
    const joinCgroup = `for procs in ${(await cgroupProcsFiles(`${cgroupRoot}/runtime`)).join(" ")}; do echo $$ > "$procs"; done; exec "$0" "$@"`;
    const containerd = await startProcess("sh", logs.containerd, ["-c", joinCgroup, join(options.binDir, "containerd"), "--config", containerdConfig]);
    children.push(containerd);
    await waitUntil(containerd, logs.containerd, timeoutMillis, "containerd", async () => (await ctr(["version"]).catch(() => "")) !== "");
    const containerdMillis = Date.now() - mark;

    mark = Date.now();
    await Promise.all(
      options.imageArchives.map((archive) =>
        run("flock", ["--shared", options.archivesLock, join(options.binDir, "ctr"), "--address", socket, "--namespace", "k8s.io", "images", "import", archive], { maxBuffer: 16 * 1024 * 1024 }),
      ),
    );
    const imagesMillis = Date.now() - mark;

    mark = Date.now();
    const [port, healthzPort] = await freeTcpPorts(2);
    const [serving, client] = await Promise.all([
      cp.issueCertificate(`kubelet-${basename(dir)}`, { ipAddresses: [hostAddress] }),
      // The Node authorizer knows a kubelet by this user and group.
      cp.issueCertificate(`system:node:${name}`, { clientAuth: true, organization: "system:nodes" }),
    ]);
    const kubeletKubeconfig = join(dir, "kubelet.kubeconfig");
    const ca = await readFile(cp.caFile);
    await writeFile(kubeletKubeconfig, kubeconfig(cp.server, ca, await readFile(client.certFile), await readFile(client.keyFile)), { mode: 0o600 });
    const kubeletConfig = join(dir, "kubelet.yaml");
    await writeFile(
      kubeletConfig,
      JSON.stringify(kubeletConfiguration({ dir, socket, cgroupRoot, hostAddress, clusterDns, port: port!, healthzPort: healthzPort!, serving, caFile: cp.caFile })),
    );
    const kubelet = await startProcess(join(options.kubeBinDir, "kubelet"), logs.kubelet, [
      `--config=${kubeletConfig}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${join(dir, "kubelet")}`,
      `--hostname-override=${name}`,
      `--node-ip=${hostAddress}`,
    ]);
    children.push(kubelet);
    await waitUntil(kubelet, logs.kubelet, timeoutMillis, `node ${name} Ready`, async () => (await nodeReady(cp, name)) === true);
    const kubeletMillis = Date.now() - mark;

    return {
      name,
      hostAddress,
      clusterDns,
      dir,
      logs,
      startup: { network: networkMillis, containerd: containerdMillis, images: imagesMillis, kubelet: kubeletMillis },
      ctr,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

interface PodNetwork {
  bridge: string;
  /** The /24, e.g. 10.244.3.0/24. */
  subnet: string;
  hostAddress: string;
  /** This machine's address in the Service range, on the bridge: the kubelet's clusterDNS. */
  clusterDns: { address: string; domain: string };
}

/** What the kubelet's clusterDomain and the pods' search lists end in. */
const CLUSTER_DOMAIN = "cluster.local";

/**
 * The first free me-nodeN bridge, with this machine at 10.244.N.1: creating the link is
 * what claims N, so concurrent runs never share one. Leftovers of a killed run only skip N.
 */
async function createBridge(): Promise<PodNetwork> {
  for (let index = 0; index < 256; index++) {
    const bridge = `me-node${index}`;
    const added = await run("ip", ["link", "add", bridge, "type", "bridge"]).then(
      () => true,
      (error: { stderr?: string }) => {
        if (error.stderr?.includes("File exists") === true) return false;
        throw new Error(`ip link add ${bridge} type bridge: ${error.stderr}`);
      },
    );
    if (!added) continue;
    const hostAddress = `${POD_NETWORKS}.${index}.1`;
    await run("ip", ["address", "add", `${hostAddress}/24`, "dev", bridge]);
    // One address per node, so that nodes of several runs each have their own cluster DNS.
    const dnsAddress = `${SERVICE_RANGE.split(".").slice(0, 3).join(".")}.${10 + index}`;
    if (10 + index > 254) throw new Error(`no Service-range address left for node ${bridge}'s cluster DNS`);
    await run("ip", ["address", "add", `${dnsAddress}/32`, "dev", bridge]);
    await run("ip", ["link", "set", bridge, "up"]);
    return { bridge, subnet: `${POD_NETWORKS}.${index}.0/24`, hostAddress, clusterDns: { address: dnsAddress, domain: CLUSTER_DOMAIN } };
  }
  throw new Error(`no free pod network: me-node0..255 all exist (ip link show type bridge)`);
}

/**
 * The CNI network containerd sets up for each pod: a veth on the node's bridge and an
 * address from host-local. No `isGateway` and no `ipMasq`: no default route in the pod,
 * no NAT and no IP forwarding on the machine (the plugin would turn it on), so pod traffic
 * ends at this machine. One route: the Service range via this machine, where the cluster
 * DNS address is local (any other Service address goes nowhere: no forwarding). Loopback
 * is containerd's own (bin_dirs), not listed here.
 */
function cniConfig(network: PodNetwork, ipamDir: string): object {
  return {
    cniVersion: "1.0.0",
    name: "microenforcer-e2e",
    plugins: [
      {
        type: "bridge",
        bridge: network.bridge,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: network.subnet, gateway: network.hostAddress }]],
          routes: [{ dst: SERVICE_RANGE, gw: network.hostAddress }],
          dataDir: ipamDir,
        },
      },
    ],
  };
}

function containerdToml(o: { dir: string; socket: string; state: string; binDir: string; sandboxImage: string }): string {
  return `version = 3
root = "${join(o.dir, "containerd", "root")}"
state = "${o.state}"
# NRI opens /var/run/nri/nri.sock, one for the whole machine; opt writes /opt/containerd.
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt"]

[grpc]
  address = "${o.socket}"
[ttrpc]
  address = "${o.socket}.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "${o.sandboxImage}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "${join(o.dir, "registries")}"

[plugins.'io.containerd.cri.v1.runtime']
  # Without CAP_SYS_RESOURCE nothing may lower an OOM score, yet the kubelet asks -998 for
  # every sandbox: clamp to containerd's own score instead of failing the pod.
  restrict_oom_score_adj = true
  # Pods' network namespaces under this node's state, not the machine's /var/run/netns.
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
    BinaryName = "${RUNC}"
    Root = "${join(o.dir, "runc")}"
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["${join(o.binDir, "cni")}"]
    conf_dir = "${o.dir}"
    max_conf_num = 1

[plugins.'io.containerd.grpc.v1.cri']
  # The kubelet proxies exec and logs streams here: loopback, any free port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`;
}

function kubeletConfiguration(o: {
  dir: string;
  socket: string;
  cgroupRoot: string;
  hostAddress: string;
  clusterDns: { address: string; domain: string };
  port: number;
  healthzPort: number;
  serving: { certFile: string; keyFile: string };
  caFile: string;
}): object {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    // Kubernetes 1.35+ refuses to run on cgroup v1 (this machine's controllers) unless told.
    failCgroupV1: false,
    // No systemd here.
    cgroupDriver: "cgroupfs",
    cgroupRoot: o.cgroupRoot,
    containerRuntimeEndpoint: `unix://${o.socket}`,
    podLogsDir: join(o.dir, "pod-logs"),
    address: o.hostAddress,
    port: o.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: o.healthzPort,
    tlsCertFile: o.serving.certFile,
    tlsPrivateKeyFile: o.serving.keyFile,
    // The apiserver (client certificate from the test CA) is the kubelet's only caller; the
    // kubelet asks it whether that user may exec or read logs (SubjectAccessReview).
    authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: o.caFile } },
    authorization: { mode: "Webhook" },
    // Without CAP_SYS_RESOURCE the kubelet cannot lower its own OOM score (-999 by default).
    oomScoreAdj: 0,
    // Pods resolve with the cluster DNS only: the host's resolvers are not the pods' business
    // (ClusterFirst would append the host's search domains; Default pods get none).
    resolvConf: "",
    clusterDNS: [o.clusterDns.address],
    clusterDomain: o.clusterDns.domain,
    // The images are imported, never pulled: garbage-collecting one would lose it, and a
    // fuller disk must not evict the tests' pods either.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    evictionHard: { "memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
  };
}

/** Whether the node reports Ready (false while it registers or is not ready yet). */
async function nodeReady(cp: ControlPlane, name: string): Promise<boolean> {
  const result = await cp.kubectl(["get", "node", name, "-o", "json"]);
  if (result.code !== 0) return false;
  const node = JSON.parse(result.stdout) as { status?: { conditions?: Array<{ type: string; status: string }> } };
  return node.status?.conditions?.some((condition) => condition.type === "Ready" && condition.status === "True") === true;
}

/**
 * Shims listen on /run/containerd/s/<hash>, outside the node's dir, and remove the socket
 * only when they exit cleanly: remove the sockets of the shims stop() killed.
 */
async function removeShimSockets(state: string): Promise<void> {
  const tasks = join(state, "io.containerd.runtime.v2.task");
  for (const namespace of await readdir(tasks).catch(() => [])) {
    for (const id of await readdir(join(tasks, namespace)).catch(() => [])) {
      const bootstrap = await readFile(join(tasks, namespace, id, "bootstrap.json"), "utf8").catch(() => undefined);
      const address = bootstrap === undefined ? undefined : (JSON.parse(bootstrap) as { address?: string }).address;
      if (address?.startsWith("unix://") === true) await unlink(address.slice("unix://".length)).catch(() => undefined);
    }
  }
}

/** Unmounts whatever containerd and the kubelet left mounted under `dir` (rootfs, shm, netns, volumes). */
async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8");
  // Field 5 is the mount point, with spaces and such escaped as octal.
  const points = mountinfo
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point?.startsWith(`${dir}/`) === true)
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  // Deepest first; lazily, so a busy mount does not stop the rest.
  for (const point of [...new Set(points)].sort((a, b) => b.length - a.length)) {
    await run("umount", ["--lazy", point]).catch(() => undefined);
  }
}
