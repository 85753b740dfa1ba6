/**
 * The `microenforcer.dev/status` annotation: exactly what the injector added, so that a
 * second pass sees the pod is done and removal puts back the pod as it was.
 */
import { isObject } from "./json.ts";
import type { DnsBefore } from "./pod-dns.ts";

export interface InjectionStatus {
  initContainers: string[];
  containers: string[];
  volumes: string[];
  /** Variable name → the containers it was added to. */
  env: Record<string, string[]>;
  annotations: string[];
  /** shareProcessNamespace before injection; null when the pod did not set it. */
  shareProcessNamespace: boolean | null;
  /** Present when the pod's resolver was pointed at the DNS forwarder: its DNS settings before. */
  dns?: DnsBefore;
  /** Volume name → the containers a mount of it was added to. */
  volumeMounts?: Record<string, string[]>;
  /** Container → its LD_PRELOAD value before the preload library was appended to it. */
  ldPreload?: Record<string, string>;
}

const isStringList = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === "string");

function isDnsBefore(value: unknown): value is DnsBefore {
  return (
    isObject(value) &&
    (value.dnsPolicy === null || typeof value.dnsPolicy === "string") &&
    (value.dnsConfig === null || isObject(value.dnsConfig)) &&
    typeof value.sysctl === "boolean" &&
    typeof value.securityContext === "boolean"
  );
}

/** Reads a status annotation; throws a message naming what is wrong with it. */
export function parseStatus(text: string): InjectionStatus {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error("the microenforcer.dev/status annotation is not JSON");
  }
  const ok =
    isObject(value) &&
    isStringList(value.initContainers) &&
    isStringList(value.containers) &&
    isStringList(value.volumes) &&
    isStringList(value.annotations) &&
    isObject(value.env) &&
    Object.values(value.env).every(isStringList) &&
    (value.shareProcessNamespace === null || typeof value.shareProcessNamespace === "boolean") &&
    (value.dns === undefined || isDnsBefore(value.dns)) &&
    (value.volumeMounts === undefined || (isObject(value.volumeMounts) && Object.values(value.volumeMounts).every(isStringList))) &&
    (value.ldPreload === undefined || (isObject(value.ldPreload) && Object.values(value.ldPreload).every((v) => typeof v === "string")));
  if (!ok) throw new Error("the microenforcer.dev/status annotation is not one the injector wrote");
  return value as unknown as InjectionStatus;
}
