/**
 * What the injector knows of a pod that its sidecar cannot see, for every record's resource
 * (OTel k8s, container and cloud semantic conventions): the workload that owns it, as far as
 * its ownerReferences tell at admission; the pod labels an admin chose; the cluster and cloud
 * the admin named; and the image of each container. Pure.
 *
 * A ReplicaSet's Deployment is named by the ReplicaSet's name, `<deployment>-<hash>` with
 * the hash of the pod's pod-template-hash label: the injector reads no workloads. A Job's
 * CronJob is not named (a pod's ownerReferences name only the Job). ownerReferences and
 * labels are the pod owner's to write, within the pod's namespace: these name what the pod
 * says it belongs to; its name, uid and namespace come from the downward API.
 */
import type { Workload } from "../microenforcer/sidecar-contract.ts";
import type { InjectorConfig } from "./config.ts";
import { arrayAt, isObject, objectAt, stringAt, stringMapAt, type JsonObject } from "./json.ts";
import { isOurContainer } from "./keys.ts";

/** The owner kinds a pod has a resource attribute for: `k8s.<kind>.name` and `.uid`. */
const OWNER_KINDS: Readonly<Record<string, string>> = {
  ReplicaSet: "replicaset",
  StatefulSet: "statefulset",
  DaemonSet: "daemonset",
  Job: "job",
  ReplicationController: "replicationcontroller",
};

function ownerAttributes(metadata: JsonObject | undefined): Record<string, string> {
  const owners = arrayAt(metadata, "ownerReferences").filter(isObject);
  const owner = owners.find((o) => o.controller === true) ?? (owners.length === 1 ? owners[0] : undefined);
  const kind = OWNER_KINDS[stringAt(owner, "kind") ?? ""];
  const name = stringAt(owner, "name");
  if (kind === undefined || name === undefined || name === "") return {};
  const attributes: Record<string, string> = { [`k8s.${kind}.name`]: name };
  const uid = stringAt(owner, "uid");
  if (uid) attributes[`k8s.${kind}.uid`] = uid;
  const hash = stringMapAt(metadata, "labels")["pod-template-hash"];
  if (kind === "replicaset" && hash && name.endsWith(`-${hash}`) && name.length > hash.length + 1) {
    attributes["k8s.deployment.name"] = name.slice(0, -(hash.length + 1));
  }
  return attributes;
}

export function podWorkload(pod: JsonObject, config: InjectorConfig): Workload {
  const metadata = objectAt(pod, "metadata");
  const labels = stringMapAt(metadata, "labels");
  const resource: Record<string, string> = { ...config.workload.resource, ...ownerAttributes(metadata) };
  for (const key of config.workload.podLabels) {
    const value = labels[key];
    if (value !== undefined) resource[`k8s.pod.label.${key}`] = value;
  }
  const spec = objectAt(pod, "spec");
  const containerImages: Record<string, string> = {};
  const probes: Record<string, string[][]> = {};
  for (const container of [...arrayAt(spec, "initContainers"), ...arrayAt(spec, "containers")]) {
    const name = stringAt(container, "name");
    if (name === undefined || isOurContainer(name)) continue;
    const image = stringAt(container, "image");
    if (image !== undefined) containerImages[name] = image;
    const commands = execProbes(container);
    if (commands.length > 0) probes[name] = commands;
  }
  return { resource, containerImages, ...(Object.keys(probes).length > 0 && { probes }) };
}

const PROBES = ["livenessProbe", "readinessProbe", "startupProbe"] as const;

/** A container's exec probes' argv, each once (the kubelet runs them with PPID 0, like `kubectl exec`). */
function execProbes(container: unknown): string[][] {
  const commands: string[][] = [];
  for (const probe of PROBES) {
    const command = arrayAt(objectAt(objectAt(container, probe), "exec"), "command");
    if (command.length === 0 || !command.every((a) => typeof a === "string")) continue;
    if (!commands.some((c) => JSON.stringify(c) === JSON.stringify(command))) commands.push(command as string[]);
  }
  return commands;
}
