/**
 * Whether a pod already runs the genuine sidecar. Nothing the pod's owner writes proves
 * injection (an annotation saying so proves nothing): the container named `microenforcer`
 * and our volumes must be exactly what render would add to this pod, apart from the
 * defaults the apiserver fills in. Anything else under our names is forged.
 */
import type { InjectorConfig, PodSecurityLevel } from "./config.ts";
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";
import { POLICY_VOLUME, PRELOAD_VOLUME, SIDECAR_NAME, SPOOL_VOLUME } from "./keys.ts";
import { sidecarVerification } from "./policy-document.ts";
import { sidecarSecurity } from "./security.ts";
import { sidecarContainer, sidecarVolumes, withoutWorkloadEnv } from "./sidecar.ts";

export type Presence = { sidecar: "absent" } | { sidecar: "genuine"; native: boolean } | { sidecar: "forged"; detail: string };

/** Fields the apiserver's defaulting adds to what we render (paths with list indices as []). */
const API_DEFAULTS: Readonly<Record<string, unknown>> = {
  terminationMessagePath: "/dev/termination-log",
  "env[].valueFrom.fieldRef.apiVersion": "v1",
  "downwardAPI.defaultMode": 420,
  "downwardAPI.items[].fieldRef.apiVersion": "v1",
};

const OUR_VOLUMES = [POLICY_VOLUME, SPOOL_VOLUME, PRELOAD_VOLUME];

const show = (value: unknown) => {
  const text = JSON.stringify(value) ?? "nothing";
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
};

/** The first place `found` differs from `expected` other than an apiserver default, or undefined. */
export function difference(found: unknown, expected: unknown, path = ""): string | undefined {
  if (Array.isArray(expected)) {
    if (!Array.isArray(found) || found.length !== expected.length) return `${path || "/"} is ${show(found)}, not ${show(expected)}`;
    for (let i = 0; i < expected.length; i++) {
      const at = difference(found[i], expected[i], `${path}[${i}]`);
      if (at !== undefined) return at;
    }
    return undefined;
  }
  if (isObject(expected)) {
    if (!isObject(found)) return `${path || "/"} is ${show(found)}, not ${show(expected)}`;
    for (const key of new Set([...Object.keys(expected), ...Object.keys(found)])) {
      const at = path === "" ? key : `${path}.${key}`;
      if (!(key in expected)) {
        if (API_DEFAULTS[at.replace(/\[\d+\]/g, "[]")] === found[key]) continue;
        return `${at} is set (${show(found[key])}); the injector sets no ${key}`;
      }
      const inner = difference(found[key], expected[key], at);
      if (inner !== undefined) return inner;
    }
    return undefined;
  }
  return found === expected ? undefined : `${path || "/"} is ${show(found)}, not ${show(expected)}`;
}

function named(list: unknown[], name: string): JsonObject[] {
  return list.filter((item): item is JsonObject => isObject(item) && stringAt(item, "name") === name);
}

/** The spec without anything under our names: what the sidecar's security settings are derived from. */
function appSpec(spec: JsonObject): JsonObject {
  const keep = (key: string) => arrayAt(spec, key).filter((c) => stringAt(c, "name") !== SIDECAR_NAME);
  return { ...spec, containers: keep("containers"), initContainers: keep("initContainers") };
}

export interface SidecarExpectation {
  config: InjectorConfig;
  podSecurityLevel: PodSecurityLevel;
}

/**
 * The sidecar and volumes render would add to this pod, in either form. The binding nonce is
 * the one thing render chose at random: the found sidecar's own is taken as expected.
 */
export function expectedSidecar(pod: JsonObject, expectation: SidecarExpectation, native: boolean): { container: JsonObject; volumes: JsonObject[] } {
  const spec = objectAt(pod, "spec") ?? {};
  const security = sidecarSecurity(appSpec(spec), expectation.podSecurityLevel, expectation.config.allowPtrace, expectation.config.runtimeDefaultCapabilities);
  const nonce = sidecarVerification(pod).nonce ?? "";
  return { container: sidecarContainer(expectation.config, security.securityContext, native, undefined, nonce), volumes: sidecarVolumes() };
}

export function inspectSidecar(pod: JsonObject, expectation: SidecarExpectation): Presence {
  const spec = objectAt(pod, "spec") ?? {};
  const inInit = named(arrayAt(spec, "initContainers"), SIDECAR_NAME);
  const inMain = named(arrayAt(spec, "containers"), SIDECAR_NAME);
  const inEphemeral = named(arrayAt(spec, "ephemeralContainers"), SIDECAR_NAME);
  const volumes = arrayAt(spec, "volumes");
  const ourVolumes = OUR_VOLUMES.filter((name) => named(volumes, name).length > 0);
  const count = inInit.length + inMain.length + inEphemeral.length;
  if (count === 0 && ourVolumes.length === 0) return { sidecar: "absent" };
  const forged = (detail: string): Presence => ({ sidecar: "forged", detail });
  if (count === 0) return forged(`the pod already has volume ${ourVolumes.join(" and volume ")}`);
  if (count > 1 || inEphemeral.length > 0) return forged(`the pod has ${count} containers named ${SIDECAR_NAME}`);
  const native = inInit.length === 1;
  const expected = expectedSidecar(pod, expectation, native);
  const where = `container ${SIDECAR_NAME} (not the genuine sidecar)`;
  const containerDiff = difference(withoutWorkloadEnv((native ? inInit[0] : inMain[0])!), expected.container);
  if (containerDiff !== undefined) return forged(`the pod already has ${where}: ${containerDiff}`);
  for (const volume of expected.volumes) {
    const found = named(volumes, volume.name as string);
    if (found.length !== 1) return forged(`the pod has ${found.length} volumes named ${volume.name as string}`);
    const volumeDiff = difference(found[0], volume);
    if (volumeDiff !== undefined) return forged(`the pod already has volume ${volume.name as string} (not the injector's): ${volumeDiff}`);
  }
  if (spec.shareProcessNamespace !== true) return forged(`the pod has ${where}: shareProcessNamespace is not true`);
  return { sidecar: "genuine", native };
}
