/**
 * Complete mode's delivery, with no entrypoint rewrite: an init container that runs before
 * every other container copies the preload library (and its mode) into an emptyDir; every
 * app container mounts that emptyDir read-only and gets LD_PRELOAD (after its own, if it
 * sets one) and MICROENFORCER_EXEC_SOCKET. The sidecar mounts it writable and listens on
 * the socket (sidecar.ts). Only for policies with `forensics.preload` on.
 */
import {
  EXEC_SOCKET_ENV,
  EXEC_SOCKET_FILE,
  POLICY_FILE,
  POLICY_MOUNT_PATH,
  PRELOAD_LIBRARY_FILE,
  PRELOAD_MOUNT_PATH,
} from "../microenforcer/sidecar-contract.ts";
import type { InjectorConfig } from "./config.ts";
import { ensureArray, isObject, stringAt, type JsonObject } from "./json.ts";
import { isOurContainer, POLICY_VOLUME, PRELOAD_INIT_NAME, PRELOAD_VOLUME } from "./keys.ts";

export const PRELOAD_LIBRARY_PATH = `${PRELOAD_MOUNT_PATH}/${PRELOAD_LIBRARY_FILE}`;
export const EXEC_SOCKET_PATH = `${PRELOAD_MOUNT_PATH}/${EXEC_SOCKET_FILE}`;

export interface PreloadDelivery {
  /** Containers given the library (mount and variables). */
  containers: string[];
  /** Containers whose own LD_PRELOAD value now ends with the library: what it was before. */
  ldPreload: Record<string, string>;
  /** Containers whose LD_PRELOAD did not exist before (the injector added the variable). */
  addedLdPreload: string[];
  warnings: string[];
}

/** The init container that fills the emptyDir: the same image and security settings as the sidecar. */
export function preloadInitContainer(config: InjectorConfig, securityContext: JsonObject): JsonObject {
  return {
    name: PRELOAD_INIT_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ["microenforcer", "preload", "install", "--dir", PRELOAD_MOUNT_PATH, "--policy", `${POLICY_MOUNT_PATH}/${POLICY_FILE}`],
    resources: structuredClone(config.resources),
    securityContext: structuredClone(securityContext),
    volumeMounts: [
      { name: POLICY_VOLUME, mountPath: POLICY_MOUNT_PATH, readOnly: true },
      { name: PRELOAD_VOLUME, mountPath: PRELOAD_MOUNT_PATH },
    ],
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
}

/**
 * Gives each container the library. What the pod set under our names is overruled (a mount
 * of our volume that could write it, its own MICROENFORCER_EXEC_SOCKET), with a warning: an
 * app that could rewrite the library or divert its reports would defeat it. An LD_PRELOAD
 * set from a reference (valueFrom) cannot be appended to: that container is left without.
 */
export function deliverPreload(containers: unknown[]): PreloadDelivery {
  const delivery: PreloadDelivery = { containers: [], ldPreload: {}, addedLdPreload: [], warnings: [] };
  for (const container of containers) {
    const name = stringAt(container, "name");
    if (!isObject(container) || name === undefined || isOurContainer(name)) continue;
    const env = ensureArray(container, "env");
    const own = env.filter((e) => stringAt(e, "name") === "LD_PRELOAD");
    if (own.some((e) => !isObject(e) || typeof e.value !== "string") || own.length > 1) {
      delivery.warnings.push(`container ${name} sets LD_PRELOAD from a reference or more than once; the preload library is not added to it, and its programs are recorded without it`);
      continue;
    }
    if (env.some((e) => stringAt(e, "name") === EXEC_SOCKET_ENV)) {
      delivery.warnings.push(`container ${name} sets ${EXEC_SOCKET_ENV} itself; overruled with the sidecar's socket`);
      container.env = env.filter((e) => stringAt(e, "name") !== EXEC_SOCKET_ENV);
    }
    const previous = own.length === 1 ? (own[0] as JsonObject).value as string : undefined;
    if (previous === undefined) {
      ensureArray(container, "env").push({ name: "LD_PRELOAD", value: PRELOAD_LIBRARY_PATH });
      delivery.addedLdPreload.push(name);
    } else {
      (own[0] as JsonObject).value = previous === "" ? PRELOAD_LIBRARY_PATH : `${previous}:${PRELOAD_LIBRARY_PATH}`;
      delivery.ldPreload[name] = previous;
    }
    ensureArray(container, "env").push({ name: EXEC_SOCKET_ENV, value: EXEC_SOCKET_PATH });
    const mounts = ensureArray(container, "volumeMounts");
    if (mounts.some((m) => stringAt(m, "name") === PRELOAD_VOLUME)) {
      delivery.warnings.push(`container ${name} mounts volume ${PRELOAD_VOLUME} itself; overruled with the injector's read-only mount`);
      container.volumeMounts = mounts.filter((m) => stringAt(m, "name") !== PRELOAD_VOLUME);
    }
    ensureArray(container, "volumeMounts").push({ name: PRELOAD_VOLUME, mountPath: PRELOAD_MOUNT_PATH, readOnly: true });
    delivery.containers.push(name);
  }
  return delivery;
}
