/** The injected container, its volumes and its environment: the sidecar contract of DESIGN.md. */
import type { InjectorConfig } from "./config.ts";
import { arrayAt, stringAt, type JsonObject } from "./json.ts";
import {
  defaultExporter,
  DOWNWARD_API,
  EXEC_SOCKET_ENV,
  POLICY_BINDING_ENV,
  POLICY_FILE,
  POLICY_KEY_ENV,
  POLICY_MOUNT_PATH,
  PRELOAD_MOUNT_PATH,
  SPOOL_DIR_ENV,
  SPOOL_MOUNT_PATH,
  SPOOL_SIZE_LIMIT,
  STARTED_PATH,
  STARTED_PORT,
  STARTED_PORT_ENV,
  WORKLOAD_ENV,
  type Workload,
} from "../microenforcer/sidecar-contract.ts";
import { POLICY_DOCUMENT_ANNOTATION, POLICY_VOLUME, PRELOAD_SIZE_LIMIT, PRELOAD_VOLUME, SIDECAR_NAME, SPOOL_VOLUME } from "./keys.ts";
import { EXEC_SOCKET_PATH } from "./preload.ts";
import { sidecarNodeOptions } from "./sidecar-heap.ts";

const fieldRef = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });

/**
 * The sidecar; `workload` is what it cannot see of the pod (workload.ts), absent where only
 * the sidecar's shape matters (genuine.ts compares it without that variable); `nonce` is the
 * pod's binding nonce, with which the sidecar checks that a signed policy document is its own.
 */
export function sidecarContainer(config: InjectorConfig, securityContext: JsonObject, native: boolean, workload?: Workload, nonce = ""): JsonObject {
  const container: JsonObject = {
    name: SIDECAR_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ["microenforcer", "watch", "--policy", `${POLICY_MOUNT_PATH}/${POLICY_FILE}`, "--exporter", defaultExporter(config.otelEnv), "--format", "json"],
    env: [
      ...DOWNWARD_API.map(({ env, fieldPath }) => ({ name: env, ...fieldRef(fieldPath) })),
      ...(config.signer === undefined
        ? []
        : [
            { name: POLICY_KEY_ENV, value: config.signer.publicKey },
            { name: POLICY_BINDING_ENV, value: nonce },
          ]),
      { name: SPOOL_DIR_ENV, value: SPOOL_MOUNT_PATH },
      // Complete mode: the socket the preload library reports to. The sidecar listens only
      // where the injector delivered the library (forensics.preload), so the container is
      // the same whatever the policy (genuine.ts compares it).
      { name: EXEC_SOCKET_ENV, value: EXEC_SOCKET_PATH },
      { name: "NODE_OPTIONS", value: sidecarNodeOptions(config.resources.limits.memory) },
      ...Object.entries(config.otelEnv).map(([name, value]) => ({ name, value })),
      ...(native ? [{ name: STARTED_PORT_ENV, value: String(STARTED_PORT) }] : []),
      ...(workload === undefined ? [] : [workloadEnv(workload)]),
    ],
    resources: structuredClone(config.resources),
    securityContext,
    volumeMounts: [
      { name: POLICY_VOLUME, mountPath: POLICY_MOUNT_PATH, readOnly: true },
      { name: SPOOL_VOLUME, mountPath: SPOOL_MOUNT_PATH },
      { name: PRELOAD_VOLUME, mountPath: PRELOAD_MOUNT_PATH },
    ],
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
  if (native) {
    container.restartPolicy = "Always";
    // The kubelet starts the app containers once this probe succeeds: when the sensor watches.
    container.startupProbe = { httpGet: { path: STARTED_PATH, port: STARTED_PORT }, periodSeconds: 1, failureThreshold: 60 };
  }
  return container;
}

export function sidecarVolumes(): JsonObject[] {
  return [
    {
      name: POLICY_VOLUME,
      downwardAPI: { items: [{ path: POLICY_FILE, fieldRef: { fieldPath: `metadata.annotations['${POLICY_DOCUMENT_ANNOTATION}']` } }] },
    },
    { name: SPOOL_VOLUME, emptyDir: { sizeLimit: SPOOL_SIZE_LIMIT } },
    { name: PRELOAD_VOLUME, emptyDir: { sizeLimit: PRELOAD_SIZE_LIMIT } },
  ];
}

/** The sidecar's workload variable: always last in its env, rewritten whenever the pod is seen again. */
function workloadEnv(workload: Workload): JsonObject {
  return { name: WORKLOAD_ENV, value: JSON.stringify(workload) };
}

/** A sidecar as genuine.ts compares it: its workload variable is the injector's to rewrite, not evidence. */
export function withoutWorkloadEnv(container: JsonObject): JsonObject {
  return { ...container, env: arrayAt(container, "env").filter((e) => stringAt(e, "name") !== WORKLOAD_ENV) };
}

/** Rewrites a genuine sidecar's workload variable for the pod as it is now (containers added by later webhooks, a copied pod). */
export function setWorkloadEnv(container: JsonObject, workload: Workload): void {
  container.env = [...arrayAt(withoutWorkloadEnv(container), "env"), workloadEnv(workload)];
}
