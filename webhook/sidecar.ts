/** The injected container, its volumes and its environment: the sidecar contract of DESIGN.md. */
import type { InjectorConfig } from "./config.ts";
import type { JsonObject } from "./json.ts";
import {
  POLICY_DOCUMENT_ANNOTATION,
  POLICY_FILE,
  POLICY_MOUNT_PATH,
  POLICY_VOLUME,
  SIDECAR_NAME,
  SPOOL_MOUNT_PATH,
  SPOOL_SIZE_LIMIT,
  SPOOL_VOLUME,
} from "./keys.ts";
import { sidecarNodeOptions } from "./sidecar-heap.ts";

const fieldRef = (fieldPath: string) => ({ valueFrom: { fieldRef: { fieldPath } } });

/** OTLP only when the injector knows where to send; stdout always (Fargate's log router reads it). */
export function sidecarExporter(otelEnv: Record<string, string>): "both" | "stdout" {
  return otelEnv.OTEL_EXPORTER_OTLP_ENDPOINT || otelEnv.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT ? "both" : "stdout";
}

export function sidecarContainer(config: InjectorConfig, securityContext: JsonObject, native: boolean): JsonObject {
  const container: JsonObject = {
    name: SIDECAR_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    command: ["microenforcer", "watch", "--policy", `${POLICY_MOUNT_PATH}/${POLICY_FILE}`, "--exporter", sidecarExporter(config.otelEnv), "--format", "json"],
    env: [
      { name: "POD_NAME", ...fieldRef("metadata.name") },
      { name: "POD_NAMESPACE", ...fieldRef("metadata.namespace") },
      { name: "POD_UID", ...fieldRef("metadata.uid") },
      { name: "NODE_NAME", ...fieldRef("spec.nodeName") },
      { name: "MICROENFORCER_SPOOL_DIR", value: SPOOL_MOUNT_PATH },
      { name: "NODE_OPTIONS", value: sidecarNodeOptions(config.resources.limits.memory) },
      ...Object.entries(config.otelEnv).map(([name, value]) => ({ name, value })),
    ],
    resources: structuredClone(config.resources),
    securityContext,
    volumeMounts: [
      { name: POLICY_VOLUME, mountPath: POLICY_MOUNT_PATH, readOnly: true },
      { name: SPOOL_VOLUME, mountPath: SPOOL_MOUNT_PATH },
    ],
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
  if (native) container.restartPolicy = "Always";
  return container;
}

export function sidecarVolumes(): JsonObject[] {
  return [
    {
      name: POLICY_VOLUME,
      downwardAPI: { items: [{ path: POLICY_FILE, fieldRef: { fieldPath: `metadata.annotations['${POLICY_DOCUMENT_ANNOTATION}']` } }] },
    },
    { name: SPOOL_VOLUME, emptyDir: { sizeLimit: SPOOL_SIZE_LIMIT } },
  ];
}
