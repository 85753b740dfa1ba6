/**
 * One AdmissionReview in, one out. A body that is not an `admission.k8s.io/v1`
 * AdmissionReview is a 400 with a message saying what was expected. Our own failures
 * admit the pod without the sidecar, with a warning (fail-open), or deny it (fail-closed).
 */
import type { RuntimePolicy } from "../policies/schema.ts";
import type { InjectorConfig } from "./config.ts";
import { SKIP_REASONS, UNEXPECTED_SKIPS, type SkipReason } from "./decide.ts";
import { injectPod } from "./inject.ts";
import { isObject, nestedDeeperThan, objectAt, stringAt, type JsonObject } from "./json.ts";
import type { InjectorMetrics } from "./metrics.ts";
import type { ClusterDns } from "./pod-dns.ts";

export interface AdmissionDeps {
  config: InjectorConfig;
  /** The RuntimePolicies to choose from right now. */
  policies: () => readonly RuntimePolicy[];
  /** The namespace's labels; undefined without cluster access. Throws when it cannot tell. */
  namespaceLabels: (namespace: string) => Promise<Record<string, string> | undefined>;
  /** The cluster's DNS service and domain right now; undefined when unknown. */
  clusterDns: () => ClusterDns | undefined;
  failClosed: boolean;
  metrics: InjectorMetrics;
}

export interface AdmissionAnswer {
  statusCode: 200 | 400 | 500;
  body: JsonObject;
}

const API_VERSION = "admission.k8s.io/v1";
/**
 * Real pods are a few dozen levels deep (managedFields included). A pod nested far deeper
 * could only be built to crash an injector into failing open, so it is refused, whatever
 * the failure policy: admitting it would admit it without the sidecar.
 */
const MAX_POD_DEPTH = 256;
const WARNING_PREFIX = "microenforcer: ";

export function invalid(message: string): AdmissionAnswer {
  return { statusCode: 400, body: { error: message } };
}

function describe(value: unknown): string {
  if (nestedDeeperThan(value, 32)) return "a deeply nested value";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The request of a well-formed AdmissionReview, or the reason it is not one. */
export function requestOf(body: unknown): JsonObject | string {
  if (!isObject(body)) return `expected an AdmissionReview object, found ${describe(body)}`;
  if (body.apiVersion !== API_VERSION || body.kind !== "AdmissionReview") {
    return `expected apiVersion ${API_VERSION} and kind AdmissionReview, found ${describe(body.apiVersion)} and ${describe(body.kind)}`;
  }
  const request = objectAt(body, "request");
  if (request === undefined) return "the AdmissionReview has no request object";
  const uid = stringAt(request, "uid");
  if (uid === undefined || uid === "") return "the AdmissionReview request has no uid";
  return request;
}

const withWarnings = (warnings: string[]) => (warnings.length > 0 ? { warnings } : {});

export function review(response: JsonObject): AdmissionAnswer {
  return { statusCode: 200, body: { apiVersion: API_VERSION, kind: "AdmissionReview", response } };
}

function skipped(uid: string, reason: SkipReason, detail: string, warnings: string[], metrics: InjectorMetrics): AdmissionAnswer {
  metrics.requests.inc({ outcome: "skipped" });
  metrics.skips.inc({ reason });
  const all = UNEXPECTED_SKIPS.includes(reason) ? [...warnings, `not injected: ${detail}`] : warnings;
  return review({ uid, allowed: true, ...withWarnings(all.map((w) => WARNING_PREFIX + w)) });
}

export async function admit(body: unknown, deps: AdmissionDeps): Promise<AdmissionAnswer> {
  const started = performance.now();
  try {
    const request = requestOf(body);
    if (typeof request === "string") {
      deps.metrics.requests.inc({ outcome: "invalid" });
      return invalid(request);
    }
    const uid = request.uid as string;
    const kind = objectAt(request, "kind");
    if (kind?.kind !== "Pod" || (kind.group ?? "") !== "" || stringAt(request, "subResource") !== undefined) {
      return skipped(uid, "not-a-pod", SKIP_REASONS["not-a-pod"], [], deps.metrics);
    }
    if (request.operation !== "CREATE") return skipped(uid, "not-create", SKIP_REASONS["not-create"], [], deps.metrics);
    const pod = isObject(request.object) ? request.object : {};
    if (nestedDeeperThan(pod, MAX_POD_DEPTH)) {
      deps.metrics.requests.inc({ outcome: "invalid" });
      return review({ uid, allowed: false, status: { code: 400, message: `${WARNING_PREFIX}the pod is nested more than ${MAX_POD_DEPTH} levels deep; refused rather than admitted uninspected` } });
    }
    const namespace = stringAt(request, "namespace") ?? stringAt(objectAt(pod, "metadata"), "namespace");
    try {
      const namespaceLabels = namespace === undefined ? undefined : await deps.namespaceLabels(namespace);
      // dryRun needs nothing special: answering has no side effects beyond these counters.
      const outcome = injectPod(pod, namespace, { config: deps.config, policies: deps.policies(), namespaceLabels, clusterDns: deps.clusterDns() });
      const { decision } = outcome;
      const warnings = outcome.warnings.map((w) => WARNING_PREFIX + w);
      if (decision.action === "refuse") {
        deps.metrics.requests.inc({ outcome: "refused" });
        deps.metrics.refusals.inc({ reason: decision.reason });
        return review({ uid, allowed: false, status: { code: 403, reason: "Forbidden", message: `${WARNING_PREFIX}refused: ${decision.detail}` }, ...withWarnings(warnings) });
      }
      const patch = decision.action === "inject" ? outcome.rendered!.patch : (outcome.touchUp?.patch ?? []);
      if (decision.action === "inject") {
        deps.metrics.requests.inc({ outcome: "injected" });
        deps.metrics.injections.inc({ form: decision.native ? "native" : "classic" });
        for (const key of decision.overruled) deps.metrics.overruled.inc({ key });
      } else if (patch.length > 0) {
        deps.metrics.requests.inc({ outcome: "touched-up" });
      } else {
        return skipped(uid, decision.reason, decision.detail, outcome.warnings, deps.metrics);
      }
      return review({ uid, allowed: true, patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64"), ...withWarnings(warnings) });
    } catch (err) {
      deps.metrics.requests.inc({ outcome: "error" });
      const message = `injector error: ${(err as Error).message}`;
      if (deps.failClosed) return review({ uid, allowed: false, status: { code: 500, message: `${WARNING_PREFIX}${message}` } });
      return review({ uid, allowed: true, warnings: [`${WARNING_PREFIX}${message}; the pod was admitted without the sidecar`] });
    }
  } finally {
    deps.metrics.duration.observe((performance.now() - started) / 1000);
  }
}
