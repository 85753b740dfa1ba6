/**
 * One exec AdmissionReview in, one out (POST /exec): each session it asks for is decided
 * against the pod's policy (exec-decide.ts), recorded (exec-record.ts), and denied with a
 * message the kubectl user sees when the policy blocks it. When the pod cannot be read the
 * session is recorded as unchecked and the answer is a 500: the webhook's failurePolicy
 * (Ignore by default) decides.
 */
import type { SensorRecord } from "../microenforcer/records/record.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { invalid, requestOf, review, type AdmissionAnswer } from "./admission.ts";
import { decideExec, execSessions, type ExecSession } from "./exec-decide.ts";
import { execRecord } from "./exec-record.ts";
import { isObject, type JsonObject } from "./json.ts";
import type { InjectorMetrics } from "./metrics.ts";
import { runningPodPolicy, runsSidecar } from "./policy-refresh.ts";

export interface ExecDeps {
  /** The pod as stored now; undefined when there is none. Throws when it cannot tell. */
  pod: (namespace: string, name: string) => Promise<JsonObject | undefined>;
  policies: () => readonly RuntimePolicy[];
  /** Throws when it cannot tell. */
  namespaceLabels: (namespace: string) => Promise<Record<string, string>>;
  emit: (record: SensorRecord) => void;
  metrics: InjectorMetrics;
}

/** The policy the pod's sidecar runs; undefined for a pod without one. */
async function podPolicy(pod: JsonObject | undefined, namespace: string, deps: ExecDeps): Promise<RuntimePolicy | undefined> {
  if (pod === undefined || !runsSidecar(pod)) return undefined;
  return runningPodPolicy(pod, deps.policies(), await deps.namespaceLabels(namespace)).policy;
}

export async function reviewExec(body: unknown, deps: ExecDeps): Promise<AdmissionAnswer> {
  const request = requestOf(body);
  if (typeof request === "string") return invalid(request);
  const uid = request.uid as string;
  const sessions = execSessions(request);
  if (typeof sessions === "string") return invalid(sessions);
  if (sessions.length === 0) return review({ uid, allowed: true });
  const [first] = sessions as [ExecSession];
  // The webhook declares NoneOnDryRun: a dry run is decided but leaves no record.
  const emit = request.dryRun === true ? () => undefined : deps.emit;
  let policy: RuntimePolicy | undefined;
  try {
    // An ephemeral-containers update carries the pod itself.
    const pod = first.kind === "ephemeralcontainers" && isObject(request.oldObject) ? request.oldObject : await deps.pod(first.namespace, first.pod);
    policy = await podPolicy(pod, first.namespace, deps);
  } catch (err) {
    const why = `the pod's policy could not be read (${(err as Error).message}); the webhook's failurePolicy decides`;
    for (const session of sessions) emit(execRecord(session, { allowed: true, why }, undefined, Date.now(), true));
    deps.metrics.execReviews.inc({ outcome: "error" }, sessions.length);
    return { statusCode: 500, body: { error: why } };
  }
  const decisions = sessions.map((session) => decideExec(session, policy));
  sessions.forEach((session, i) => {
    const decision = decisions[i]!;
    emit(execRecord(session, decision, policy));
    deps.metrics.execReviews.inc({ outcome: decision.allowed ? "allowed" : "denied" });
  });
  const denial = decisions.find((d) => !d.allowed);
  if (denial === undefined || denial.allowed) return review({ uid, allowed: true });
  return review({ uid, allowed: false, status: { code: 403, reason: "Forbidden", message: denial.message } });
}
