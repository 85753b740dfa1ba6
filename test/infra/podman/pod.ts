/**
 * Test helper: runs a Pod object, as the API server stored it, under `podman kube play` —
 * podman standing in for the kubelet of a node called `nodeName`. The containers share the
 * pod's network namespace, and its PID namespace when the pod asks for it, as on a node.
 *
 * Network: slirp4netns gives the pod its own network namespace whose gateway, 10.0.2.2
 * (HOST_FROM_POD), is this machine's loopback. Traffic between containers stays on the
 * pod's loopback; the pod reaches services the test runs on 127.0.0.1 (the collector)
 * through that gateway. Tests send pod traffic nowhere else.
 *
 * podman 4.3 lacks four things a kubelet does; forPodman() adapts exactly those. One of
 * them, the downward-API volume, is done here as the kubelet does it (see
 * writeVolumeFiles), so refreshDownwardApi() can replay the kubelet's refresh of the
 * files when the pod's annotations change in the API.
 */
import { chmod, mkdir, mkdtemp, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { containerLogs, podman, podmanOk, type PodmanResult } from "./podman.ts";

/** The host's loopback as the pod sees it (slirp4netns with allow_host_loopback). */
export const HOST_FROM_POD = "10.0.2.2";
/** The address slirp4netns gives every pod. */
const POD_IP = "10.0.2.100";

// The Pod as JSON: only the fields the harness reads or rewrites are typed.
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  env?: EnvVar[];
  restartPolicy?: string;
  [field: string]: unknown;
}
interface DownwardApiItem {
  path: string;
  fieldRef?: { fieldPath: string };
}
interface Volume {
  name: string;
  downwardAPI?: { items?: DownwardApiItem[] };
  hostPath?: { path: string; type: string };
  [field: string]: unknown;
}
export interface Pod {
  metadata: { name: string; namespace: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec: { containers: Container[]; initContainers?: Container[]; volumes?: Volume[]; [field: string]: unknown };
  [field: string]: unknown;
}

export interface PlayedPod {
  name: string;
  /** `podman inspect --format FORMAT` of one of the pod's containers, e.g. `{{.Id}}`. */
  inspect(container: string, format: string): Promise<string>;
  exec(container: string, args: string[]): Promise<PodmanResult>;
  /** The container's stdout and stderr (each in order, stderr after stdout). */
  logs(container: string): Promise<string>;
  /** The kubelet's periodic sync of downward-API volumes after `pod` changed in the API. */
  refreshDownwardApi(pod: Pod): Promise<void>;
  down(): Promise<void>;
}

export async function playPod(pod: Pod, options: { nodeName: string }): Promise<PlayedPod> {
  const dir = await mkdtemp(join(tmpdir(), "podman-pod-"));
  // mkdtemp makes it 0700: the containers' users must get through to their volumes.
  await chmod(dir, 0o755);
  const volumeDirs = new Map<string, string>();
  const downwardApiVolumes = (pod.spec.volumes ?? []).filter((volume) => volume.downwardAPI !== undefined);
  for (const volume of downwardApiVolumes) {
    const volumeDir = join(dir, "volumes", volume.name);
    await mkdir(volumeDir, { recursive: true, mode: 0o755 });
    await writeVolumeFiles(volumeDir, downwardApiFiles(pod, volume));
    volumeDirs.set(volume.name, volumeDir);
  }
  const file = join(dir, "pod.json");
  // JSON is YAML: kube play reads it as it is.
  await writeFile(file, JSON.stringify(forPodman(pod, { nodeName: options.nodeName, volumeDirs })));
  const name = pod.metadata.name;
  const down = async () => {
    await podman(["pod", "rm", "--force", "--time", "0", name]);
    await rm(dir, { recursive: true, force: true });
  };
  const played = await podman(["kube", "play", "--network", "slirp4netns:allow_host_loopback=true", file]);
  if (played.code !== 0) {
    await down();
    throw new Error(`podman kube play exited ${played.code}: ${played.stderr}`);
  }
  const containerName = (container: string) => `${name}-${container}`;
  return {
    name,
    inspect: async (container, format) => (await podmanOk(["inspect", "--format", format, containerName(container)])).trim(),
    exec: (container, args) => podman(["exec", containerName(container), ...args]),
    logs: (container) => containerLogs(containerName(container)),
    async refreshDownwardApi(current) {
      for (const volume of downwardApiVolumes) await writeVolumeFiles(volumeDirs.get(volume.name)!, downwardApiFiles(current, volume));
    },
    down,
  };
}

/**
 * The pod as podman 4.3 can run it. This is the one place that changes a pod for podman,
 * and it changes only what podman lacks:
 *
 * 1. Native sidecars (init containers with `restartPolicy: Always`): podman would run one
 *    as an ordinary init container, wait for it to finish, and fail the play. They become
 *    regular containers placed first, as the kubelet starts them before the app containers.
 * 2. The env fieldRefs podman cannot resolve (the whole play fails on them) become the
 *    values a kubelet would give: `metadata.namespace` from the pod, `spec.nodeName` the
 *    node this stand-in kubelet is, `status.podIP` the address slirp4netns gives the pod.
 *    Others (`metadata.name`, `metadata.uid`, labels) podman resolves itself; note that
 *    `metadata.uid` gives podman's pod ID, not the API server's uid.
 * 3. downwardAPI volumes, which podman refuses: they become hostPath directories whose
 *    files the harness writes as the kubelet does (`volumeDirs`).
 * 4. Annotations longer than 63 characters, which podman refuses (it applies the limit of
 *    label values to annotations): they are left out. Inside the pod, annotations are only
 *    seen through downward-API files, and the harness writes those from the API's pod.
 * 5. Init containers: podman 4.3 removes each ("once" type) as soon as it exited, and the
 *    removal races the container's own stop ("cannot remove container ... as it is
 *    running", podman#18477): the play fails. They are kept instead ("always" type, the
 *    pod annotation podman reads for it); they still run to completion, in order, first.
 */
export function forPodman(pod: Pod, kubelet: { nodeName: string; volumeDirs: Map<string, string> }): Pod {
  const adapted = structuredClone(pod);
  const annotations = Object.entries(pod.metadata.annotations ?? {}).filter(([, value]) => value.length <= 63);
  adapted.metadata.annotations = { ...Object.fromEntries(annotations), "io.podman.annotations.init.container.type": "always" };
  const fieldValues: Record<string, string> = { "metadata.namespace": pod.metadata.namespace, "spec.nodeName": kubelet.nodeName, "status.podIP": POD_IP };
  const nativeSidecars = (adapted.spec.initContainers ?? []).filter((c) => c.restartPolicy === "Always");
  const initContainers = (adapted.spec.initContainers ?? []).filter((c) => c.restartPolicy !== "Always");
  for (const sidecar of nativeSidecars) delete sidecar.restartPolicy;
  adapted.spec.containers = [...nativeSidecars, ...adapted.spec.containers];
  if (initContainers.length > 0) adapted.spec.initContainers = initContainers;
  else delete adapted.spec.initContainers;
  for (const container of [...adapted.spec.containers, ...initContainers]) {
    for (const env of container.env ?? []) {
      const value = fieldValues[env.valueFrom?.fieldRef?.fieldPath ?? ""];
      if (value === undefined) continue;
      env.value = value;
      delete env.valueFrom;
    }
  }
  adapted.spec.volumes = adapted.spec.volumes?.map((volume) => {
    const dir = kubelet.volumeDirs.get(volume.name);
    return dir === undefined ? volume : { name: volume.name, hostPath: { path: dir, type: "Directory" } };
  });
  return adapted;
}

/** A downwardAPI volume's files for `pod`; the harness projects annotations and labels. */
function downwardApiFiles(pod: Pod, volume: Volume): Record<string, string> {
  const files: Record<string, string> = {};
  for (const item of volume.downwardAPI?.items ?? []) {
    const fieldPath = item.fieldRef?.fieldPath ?? "";
    const match = /^metadata\.(annotations|labels)\['(.+)'\]$/.exec(fieldPath);
    if (match === null || item.path.includes("/")) throw new Error(`podman harness: cannot project ${fieldPath} into ${item.path} (volume ${volume.name})`);
    files[item.path] = pod.metadata[match[1] as "annotations" | "labels"]?.[match[2]!] ?? "";
  }
  return files;
}

/**
 * Writes a volume's files the way the kubelet's AtomicWriter does, so a reader sees the
 * old or the new set, never a mix: the data goes into a fresh timestamped directory, the
 * `..data` symlink is swapped to it by a rename, and each visible file is a symlink through
 * `..data` (made once). The directory is what the container mounts; the policy watcher of
 * the sidecar (policies/policy-file-watcher.ts) expects exactly this layout.
 */
async function writeVolumeFiles(dir: string, files: Record<string, string>): Promise<void> {
  const previous = await readlink(join(dir, "..data")).catch(() => undefined);
  const stamp = `..${Date.now()}.${Math.random().toString().slice(2, 10)}`;
  await mkdir(join(dir, stamp), { mode: 0o755 });
  for (const [name, content] of Object.entries(files)) {
    await writeFile(join(dir, stamp, name), content, { mode: 0o644 });
    if (previous === undefined) await symlink(join("..data", name), join(dir, name));
  }
  await symlink(stamp, join(dir, "..data_tmp"));
  await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  if (previous !== undefined) await rm(join(dir, previous), { recursive: true, force: true });
}
