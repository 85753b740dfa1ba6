/**
 * kubectl exec, attach and debug at admission: the requests as the apiserver sends them
 * (CONNECT pods/exec and pods/attach, UPDATE pods/ephemeralcontainers), the decision table
 * (session × the pod's policy), the record each one leaves, and the answer the kubectl user
 * sees. The pod's owner writes the command, container and the pod's labels; only the
 * RuntimePolicy (an admin's) decides.
 */
import assert from "node:assert/strict";
import { validatePolicy } from "../../policies/load.ts";
import { checkContainerExec } from "../../microenforcer/policy/process-controls.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { ruleAttributes } from "../../microenforcer/records/security-rule.ts";
import { reviewExec, type ExecDeps } from "../../webhook/exec-admission.ts";
import { decideExec, execSessions, type ExecSession } from "../../webhook/exec-decide.ts";
import { execRecord } from "../../webhook/exec-record.ts";
import type { JsonObject } from "../../webhook/json.ts";
import { createMetrics } from "../../webhook/metrics.ts";
import { processInfo } from "./process-fixture.ts";

const policy = (name: string, spec: object) => validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name }, spec }, name);
const USER = { username: "alice", groups: ["tenants", "system:authenticated"] };

function connect(subResource: "exec" | "attach", object: object, overrides: object = {}): JsonObject {
  const kind = subResource === "exec" ? "PodExecOptions" : "PodAttachOptions";
  return {
    uid: "u-1",
    kind: { group: "", version: "v1", kind },
    resource: { group: "", version: "v1", resource: "pods" },
    subResource,
    name: "web-1",
    namespace: "shop",
    operation: "CONNECT",
    userInfo: USER,
    object: { apiVersion: "v1", kind, ...object },
    ...overrides,
  };
}
const exec = (command: string[], extra: object = {}) => connect("exec", { container: "app", command, stdin: true, tty: true, stdout: true, ...extra });
const podWith = (ephemeralContainers: object[]) => ({ metadata: { name: "web-1", namespace: "shop" }, spec: { containers: [{ name: "app" }], ephemeralContainers } });
const debug = (added: object[], before: object[] = []): JsonObject => ({
  uid: "u-2",
  kind: { group: "", version: "v1", kind: "Pod" },
  resource: { group: "", version: "v1", resource: "pods" },
  subResource: "ephemeralcontainers",
  name: "web-1",
  namespace: "shop",
  operation: "UPDATE",
  userInfo: USER,
  object: podWith([...before, ...added]),
  oldObject: podWith(before),
});
const sessionsOf = (request: JsonObject): ExecSession[] => {
  const sessions = execSessions(request);
  assert.ok(Array.isArray(sessions), String(sessions));
  return sessions;
};

describe("exec admission: the requests", () => {
  it("reads an exec: user, groups, pod, container, command, tty and stdin", () => {
    assert.deepEqual(sessionsOf(exec(["sh", "-c", "id"])), [
      { kind: "exec", user: { name: "alice", groups: ["tenants", "system:authenticated"] }, namespace: "shop", pod: "web-1", container: "app", command: ["sh", "-c", "id"], tty: true, stdin: true },
    ]);
  });

  it("reads an attach (no command) and an exec that names no container", () => {
    assert.deepEqual(sessionsOf(connect("attach", { stdin: false, tty: false }))[0], { kind: "attach", user: { name: "alice", groups: USER.groups }, namespace: "shop", pod: "web-1", container: undefined, command: undefined, tty: false, stdin: false });
    assert.equal(sessionsOf(exec(["ls"], { container: "" }))[0]!.container, undefined);
  });

  it("reads only the ephemeral containers a debug adds, command and args joined", () => {
    const old = { name: "debugger-a", image: "busybox", command: ["sh"] };
    const sessions = sessionsOf(debug([{ name: "debugger-b", image: "busybox", command: ["sh"], args: ["-c", "id"], stdin: true, tty: true }, { name: "debugger-c", image: "busybox" }], [old]));
    assert.deepEqual(
      sessions.map((s) => [s.container, s.command, s.tty]),
      [
        ["debugger-b", ["sh", "-c", "id"], true],
        ["debugger-c", undefined, false],
      ],
    );
  });

  it("says what it expected of anything else", () => {
    assert.match(String(execSessions({ ...exec(["ls"]), subResource: "log" })), /expected a pods\/exec, pods\/attach or pods\/ephemeralcontainers request, found pods\/log/);
    assert.match(String(execSessions({ ...exec(["ls"]), operation: "CREATE" })), /expected CONNECT for pods\/exec, found CREATE/);
    assert.match(String(execSessions({ ...exec(["ls"]), name: undefined })), /names no pod/);
  });
});

describe("exec admission: the decision table", () => {
  const enforce = (containerExec: object | undefined, mode = "enforce") => policy("p", { enforcementMode: mode, ...(containerExec && { controls: { containerExec } }) });
  const session = (command: string[] | undefined, kind: ExecSession["kind"] = "exec"): ExecSession => ({ kind, user: { name: "alice", groups: [] }, namespace: "shop", pod: "web-1", container: "app", command, tty: true, stdin: true });
  const rows: Array<[string, ExecSession, ReturnType<typeof policy> | undefined, string]> = [
    ["a pod without the sidecar", session(["sh"]), undefined, "allowed"],
    ["no containerExec control", session(["sh"]), enforce(undefined), "allowed"],
    ["audit mode", session(["sh"]), enforce({ block: true, allowedCommands: ["ls"] }, "audit"), "allowed"],
    ["block: false", session(["sh"]), enforce({ block: false }), "allowed"],
    ["enforce, nothing allowed", session(["ls"]), enforce({ block: true }), "denied: microenforcer: exec into pod shop/web-1 denied: RuntimePolicy p (enforce mode) allows no exec sessions"],
    ["enforce, command allowed by name", session(["ls", "-l"]), enforce({ block: true, allowedCommands: ["ls", "cat"] }), "allowed"],
    ["enforce, command allowed by its path's base name", session(["/bin/ls"]), enforce({ block: true, allowedCommands: ["ls"] }), "allowed"],
    ["enforce, command allowed by a path glob", session(["/usr/bin/cat"]), enforce({ block: true, allowedCommands: ["/usr/bin/*"] }), "allowed"],
    [
      "enforce, command not allowed",
      session(["sh", "-c", "ls"]),
      enforce({ block: true, allowedCommands: ["ls", "cat"] }),
      "denied: microenforcer: exec into pod shop/web-1 denied: RuntimePolicy p (enforce mode) allows only containerExec.allowedCommands (ls, cat); sh is not one of them",
    ],
    ["enforce, a path that only looks allowed", session(["/tmp/ls/sh"]), enforce({ block: true, allowedCommands: ["ls"] }), "denied"],
    ["attach starts no process", session(undefined, "attach"), enforce({ block: true }), "allowed"],
    [
      "an ephemeral container running its image's entrypoint",
      session(undefined, "ephemeralcontainers"),
      enforce({ block: true, allowedCommands: ["ls"] }),
      "denied: microenforcer: ephemeral container into pod shop/web-1 denied: RuntimePolicy p (enforce mode) allows only containerExec.allowedCommands (ls), and this one runs its image's entrypoint, which cannot be checked",
    ],
    ["an ephemeral container running an allowed command", session(["ls"], "ephemeralcontainers"), enforce({ block: true, allowedCommands: ["ls"] }), "allowed"],
  ];
  rows.forEach(([what, s, p, expected]) => {
    it(`${what}: ${expected.split(":")[0]}`, () => {
      const decision = decideExec(s, p);
      const got = decision.allowed ? "allowed" : `denied: ${decision.message}`;
      if (expected === "denied") assert.ok(!decision.allowed);
      else assert.equal(got, expected);
    });
  });
});

describe("exec admission: the record", () => {
  it("names the user, groups, pod, container, command, tty/stdin, policy and answer", () => {
    const p = policy("strict", { enforcementMode: "enforce", controls: { containerExec: { block: true } } });
    const s = sessionsOf(exec(["sh", "-c", "id"]))[0]!;
    const record = execRecord(s, decideExec(s, p), p, 1000);
    assert.equal(record.eventName, "microenforcer.k8s.exec");
    assert.equal(record.severity, "ERROR");
    assert.deepEqual(record.attributes, {
      "user.name": "alice",
      "microenforcer.k8s.user.groups": ["tenants", "system:authenticated"],
      "k8s.namespace.name": "shop",
      "k8s.pod.name": "web-1",
      "microenforcer.k8s.subresource": "exec",
      "microenforcer.exec.tty": true,
      "microenforcer.exec.stdin": true,
      "microenforcer.action": "denied",
      "k8s.container.name": "app",
      "process.command_args": ["sh", "-c", "id"],
      "microenforcer.policy.name": "strict",
      "microenforcer.policy.mode": "enforce",
      "security_rule.name": "no exec sessions allowed",
      "security_rule.category": "containerExec",
      "security_rule.ruleset.name": "strict",
      "security_rule.uuid": record.attributes["security_rule.uuid"],
    });
    assert.match(record.body, /^kubectl exec by alice into shop\/web-1 container app: sh -c id — denied: /);
  });

  it("names a denial's rule as the sidecar names its finding for the same session, so a backend joins the two", () => {
    const p = policy("strict", { enforcementMode: "enforce", controls: { containerExec: { block: true, allowedCommands: ["ls", "cat"] } } });
    const s = sessionsOf(exec(["sh", "-c", "id"]))[0]!;
    const denial = execRecord(s, decideExec(s, p), p);
    const [finding] = checkContainerExec(p.spec.controls!, processInfo({ origin: "exec-session", comm: "sh", exe: { path: "/bin/sh", deleted: false, memfd: false }, args: ["sh", "-c", "id"] }));
    assert.ok(finding);
    const sidecar = ruleAttributes(p, finding);
    assert.equal(denial.attributes["security_rule.name"], "allowedCommands: ls, cat");
    for (const key of ["security_rule.name", "security_rule.category", "security_rule.ruleset.name", "security_rule.uuid"] as const) assert.equal(denial.attributes[key], sidecar[key], key);
    // An allowed session is no finding.
    const allowed = sessionsOf(exec(["ls"]))[0]!;
    assert.equal(execRecord(allowed, decideExec(allowed, p), p).attributes["security_rule.name"], undefined);
  });

  it("redacts secrets in the command, as the sidecar does", () => {
    const s = sessionsOf(exec(["mysql", "--password=hunter2"]))[0]!;
    const record = execRecord(s, { allowed: true, why: "x" }, undefined);
    assert.deepEqual(record.attributes["process.command_args"], ["mysql", "--password=[REDACTED]"]);
    assert.equal(record.attributes["microenforcer.redacted"], true);
    assert.doesNotMatch(record.body, /hunter2/);
  });
});

describe("exec admission: the answer", () => {
  const strict = policy("strict", { enforcementMode: "enforce", controls: { containerExec: { block: true, allowedCommands: ["ls"] } } });
  const injected = { metadata: { name: "web-1", namespace: "shop" }, spec: { initContainers: [{ name: "microenforcer" }], containers: [{ name: "app" }] } };
  function deps(pod: () => Promise<JsonObject | undefined>) {
    const records: SensorRecord[] = [];
    const metrics = createMetrics();
    const d: ExecDeps = { pod, policies: () => [strict], namespaceLabels: async () => ({}), emit: (r) => records.push(r), metrics };
    return { d, records, metrics };
  }
  const reviewOf = (request: JsonObject) => ({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", request });

  it("denies a blocked command with the message kubectl shows, and records it", async () => {
    const { d, records, metrics } = deps(async () => injected);
    const answer = await reviewExec(reviewOf(exec(["sh"])), d);
    assert.equal(answer.statusCode, 200);
    const response = answer.body.response as { uid: string; allowed: boolean; status: { code: number; message: string } };
    assert.equal(response.uid, "u-1");
    assert.equal(response.allowed, false);
    assert.equal(response.status.code, 403);
    assert.match(response.status.message, /^microenforcer: exec into pod shop\/web-1 denied: RuntimePolicy strict \(enforce mode\) allows only containerExec\.allowedCommands \(ls\); sh is not one of them$/);
    assert.deepEqual(records.map((r) => r.attributes["microenforcer.action"]), ["denied"]);
    assert.equal(metrics.execReviews.get({ outcome: "denied" }), 1);
  });

  it("allows and records an allowed command, and any command into a pod without the sidecar", async () => {
    const withSidecar = deps(async () => injected);
    assert.equal(((await reviewExec(reviewOf(exec(["ls"])), withSidecar.d)).body.response as { allowed: boolean }).allowed, true);
    const without = deps(async () => ({ metadata: { name: "web-1" }, spec: { containers: [{ name: "app" }] } }));
    assert.equal(((await reviewExec(reviewOf(exec(["sh"])), without.d)).body.response as { allowed: boolean }).allowed, true);
    assert.deepEqual([...withSidecar.records, ...without.records].map((r) => r.attributes["microenforcer.action"]), ["allowed", "allowed"]);
    assert.equal(without.records[0]!.attributes["microenforcer.policy.name"], undefined);
  });

  it("decides a dry run without recording it (NoneOnDryRun)", async () => {
    const { d, records } = deps(async () => injected);
    const request = { ...debug([{ name: "dbg", image: "busybox", command: ["sh"] }]), oldObject: injected, dryRun: true };
    assert.equal(((await reviewExec(reviewOf(request), d)).body.response as { allowed: boolean }).allowed, false);
    assert.equal(records.length, 0);
  });

  it("decides a debug against the pod it carries, without reading it", async () => {
    const { d, records } = deps(async () => assert.fail("read the pod"));
    const request = { ...debug([{ name: "dbg", image: "busybox", command: ["sh"] }]), oldObject: { ...injected, spec: { ...injected.spec, ephemeralContainers: [] } } };
    const response = (await reviewExec(reviewOf(request), d)).body.response as { allowed: boolean; status: { message: string } };
    assert.equal(response.allowed, false);
    assert.match(response.status.message, /ephemeral container into pod shop\/web-1 denied/);
    assert.equal(records[0]!.attributes["k8s.container.name"], "dbg");
  });

  it("leaves the failurePolicy to decide when the pod cannot be read, and records the session as unchecked", async () => {
    const { d, records, metrics } = deps(async () => {
      throw new Error("apiserver unavailable");
    });
    const answer = await reviewExec(reviewOf(exec(["sh"])), d);
    assert.equal(answer.statusCode, 500);
    assert.match(String(answer.body.error), /the pod's policy could not be read \(apiserver unavailable\)/);
    assert.equal(records[0]!.attributes["microenforcer.action"], "unchecked");
    assert.equal(records[0]!.severity, "WARN");
    assert.equal(metrics.execReviews.get({ outcome: "error" }), 1);
  });

  it("answers a review that is not an exec with 400 and what it expected", async () => {
    const { d, records } = deps(async () => injected);
    const answer = await reviewExec(reviewOf({ ...exec(["sh"]), subResource: "portforward" }), d);
    assert.equal(answer.statusCode, 400);
    assert.match(String(answer.body.error), /found pods\/portforward/);
    assert.equal(records.length, 0);
  });
});
