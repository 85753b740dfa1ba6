/**
 * `kubectl exec`, `attach` and `debug` as the apiserver shows them to a validating webhook
 * (CONNECT pods/exec and pods/attach, UPDATE pods/ephemeralcontainers), and whether the
 * pod's policy lets them through. Pure: the pod's policy comes in as an argument.
 *
 * The rule is the sidecar's containerExec control (microenforcer/policy/process-controls.ts, with the same pattern matching)
 * applied before any process starts: in enforce mode, with `block`, a command whose argv[0]
 * is not in `allowedCommands` is denied. Attach starts no process (it joins the container's
 * own), so it is recorded, never denied. An ephemeral container without a command runs its
 * image's entrypoint, which nothing here can check: denied where a command would be.
 */
import { basename } from "node:path";
import { containerExecRule, matchesExecutable } from "../policies/executable-pattern.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { arrayAt, isObject, objectAt, stringAt, type JsonObject } from "./json.ts";

export type ExecKind = "exec" | "attach" | "ephemeralcontainers";

/** One session a user asked for: what the record says and the decision is about. */
export interface ExecSession {
  kind: ExecKind;
  user: { name: string; groups: string[] };
  namespace: string;
  pod: string;
  /** undefined when the request names none (the apiserver then picks the pod's only container). */
  container: string | undefined;
  /** undefined for attach, and for an ephemeral container that runs its image's entrypoint. */
  command: string[] | undefined;
  tty: boolean;
  stdin: boolean;
}

/** A denial names the containerExec rule it applied, as the sidecar's finding would. */
export type ExecDecision = { allowed: true; why: string } | { allowed: false; message: string; rule: string };

const SUBRESOURCES: Readonly<Record<string, { operation: string; kind: ExecKind }>> = {
  exec: { operation: "CONNECT", kind: "exec" },
  attach: { operation: "CONNECT", kind: "attach" },
  ephemeralcontainers: { operation: "UPDATE", kind: "ephemeralcontainers" },
};

const strings = (value: unknown): string[] | undefined => (Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined);

/** Ephemeral containers in `object` that `oldObject` did not have: the ones this request adds. */
function addedEphemeral(request: JsonObject): JsonObject[] {
  const before = new Set(arrayAt(objectAt(request.oldObject, "spec"), "ephemeralContainers").map((c) => stringAt(c, "name")));
  return arrayAt(objectAt(request.object, "spec"), "ephemeralContainers").filter((c): c is JsonObject => isObject(c) && !before.has(stringAt(c, "name")));
}

/**
 * The sessions an AdmissionReview request asks for (an ephemeral-containers update may add
 * several, or none), or why it is not one of ours.
 */
export function execSessions(request: JsonObject): ExecSession[] | string {
  const subResource = stringAt(request, "subResource") ?? "";
  const expected = SUBRESOURCES[subResource];
  const resource = objectAt(request, "resource");
  if (expected === undefined || stringAt(resource, "resource") !== "pods" || (stringAt(resource, "group") ?? "") !== "") {
    return `expected a pods/exec, pods/attach or pods/ephemeralcontainers request, found ${stringAt(resource, "resource") ?? "?"}/${subResource}`;
  }
  if (request.operation !== expected.operation) return `expected ${expected.operation} for pods/${subResource}, found ${String(request.operation)}`;
  const namespace = stringAt(request, "namespace");
  const pod = stringAt(request, "name");
  if (namespace === undefined || pod === undefined) return "the request names no pod and namespace";
  const userInfo = objectAt(request, "userInfo");
  const user = { name: stringAt(userInfo, "username") ?? "", groups: strings(userInfo?.groups) ?? [] };
  const base = { kind: expected.kind, user, namespace, pod };
  if (expected.kind === "ephemeralcontainers") {
    return addedEphemeral(request).map((c) => {
      const command = [...(strings(c.command) ?? []), ...(strings(c.args) ?? [])];
      return { ...base, container: stringAt(c, "name"), command: strings(c.command) === undefined ? undefined : command, tty: c.tty === true, stdin: c.stdin === true };
    });
  }
  const options = objectAt(request, "object");
  const command = expected.kind === "exec" ? (strings(options?.command) ?? []) : undefined;
  return [{ ...base, container: stringAt(options, "container") || undefined, command, tty: options?.tty === true, stdin: options?.stdin === true }];
}

const SESSION_WORD: Readonly<Record<ExecKind, string>> = { exec: "exec", attach: "attach", ephemeralcontainers: "ephemeral container" };

/** `policy`: the one the pod's sidecar runs; undefined when the pod runs without it. */
export function decideExec(session: ExecSession, policy: RuntimePolicy | undefined): ExecDecision {
  if (session.kind === "attach") return { allowed: true, why: "attach starts no process" };
  if (policy === undefined) return { allowed: true, why: "the pod runs without the MicroEnforcer" };
  const rule = policy.spec.controls?.containerExec;
  const name = `RuntimePolicy ${policy.metadata.name}`;
  if (rule === undefined) return { allowed: true, why: `${name} has no containerExec control` };
  if (!rule.block || policy.spec.enforcementMode !== "enforce") return { allowed: true, why: `${name} audits exec sessions (the sidecar reports them)` };
  const allowed = rule.allowedCommands ?? [];
  const where = `into pod ${session.namespace}/${session.pod}`;
  const denied = (why: string): ExecDecision => ({ allowed: false, message: `microenforcer: ${SESSION_WORD[session.kind]} ${where} denied: ${name} (enforce mode) ${why}`, rule: containerExecRule(allowed) });
  if (allowed.length === 0) return denied("allows no exec sessions");
  const list = `containerExec.allowedCommands (${allowed.join(", ")})`;
  const argv0 = session.command?.[0];
  if (argv0 === undefined || argv0 === "") {
    return denied(`allows only ${list}, and this one ${session.kind === "exec" ? "names no command" : "runs its image's entrypoint, which cannot be checked"}`);
  }
  if (allowed.some((pattern) => matchesExecutable(pattern, argv0, basename(argv0)))) return { allowed: true, why: `${argv0} is in ${list}` };
  return denied(`allows only ${list}; ${argv0} is not one of them`);
}
