/**
 * Exec sessions started by runc, which runs containers under containerd (as on the test
 * node), CRI-O and podman on most nodes, Fargate's included.
 *
 * What runc does: an exec session starts as `runc init` (comm `runc:[2:INIT]`), as root,
 * with PPID 0 and, for its first moments, in the runtime's cgroup (containerd's shim's;
 * `…/conmon` under podman); it joins the container's cgroup, switches to the container's user and execs the
 * command a few milliseconds later. A sidecar running as the app's UID cannot read that
 * root process's environ; it must wait for the exec to know whose session it is.
 *
 * The user's expectation, asserted here: the session is an `exec-session` of container
 * `app`, and so are its children and their connections; and a policy that blocks exec
 * sessions (`controls.containerExec`) kills it where the exec webhook did not refuse it
 * (exec-admission.test.ts): here the injector is down, and that webhook fails open. With
 * complete mode (the policy's default), an intruder's burst of sub-ms commands in a
 * session is recorded in full, each command reported by the preload library.
 */
import assert from "node:assert/strict";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { suiteEnvironment, type Environment } from "./environment.ts";
import type { RunningPod } from "./pods.ts";
import { isClientConnection, isClientSession, runClient, startTestNginx, testNginx } from "./test-nginx.ts";

describe("e2e: exec sessions through runc", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;
  let pod: RunningPod;

  suiteEnvironment("e2e-runc-exec", async (started, ns) => {
    [env, namespace] = [started, ns];
    pod = await env.runPod(await env.createPod(testNginx(namespace, env.images.app)));
    assert.equal((await runClient(pod, "/session")).code, 0);
  });

  it("records a `kubectl exec` session as an exec-session of the container it entered", async () => {
    const [exec] = await env.records(pod, isClientSession);
    assert.ok(exec, "the session's process record reached the collector");
    assert.equal(exec.attributes["microenforcer.exec.origin"], "exec-session");
    assert.equal(exec.attributes["k8s.container.name"], "app");
  });

  it("attributes the session's connection to that session and container", async () => {
    const [exec] = await env.records(pod, isClientSession);
    const [connection] = await env.records(pod, isClientConnection);
    assert.ok(exec && connection, "the session's process and connection records reached the collector");
    assert.equal(connection.attributes["k8s.container.name"], "app");
    assert.equal(connection.attributes["microenforcer.exec.session_pid"], exec.attributes["process.pid"]);
  });

  it("records a `kubectl exec` session's discovery burst in full, each command reported by the preload library", async () => {
    // The app image's dynamically linked programs (test/infra/podman/build.sh): busybox is static.
    const dynamic = "/opt/dynamic/bin";
    const burst = ["id", "whoami", "uname -a", "hostname", "cat /etc/passwd", "ls -la /", "env", "ps"];
    const session = await pod.exec("app", [`${dynamic}/sh`, "-c", `PATH=${dynamic}; ${burst.join("; ")}`]);
    assert.equal(session.code, 0, session.stderr);
    const argsOf = (r: CollectedLogRecord): string => ((r.attributes["process.command_args"] as string[] | undefined) ?? []).join(" ");
    const isBurst = (r: CollectedLogRecord): boolean => r.eventName === "microenforcer.process.exec" && burst.includes(argsOf(r));
    await env.records(pod, isBurst, burst.length);
    const [shell] = await env.records(pod, (r) => r.eventName === "microenforcer.process.exec" && r.attributes["process.executable.path"] === `${dynamic}/sh`);
    const records = await env.recordsSoFar(pod, isBurst);
    assert.deepEqual(records.map(argsOf).sort(), [...burst].sort(), "each command recorded once");
    assert.equal(shell?.attributes["microenforcer.exec.origin"], "exec-session");
    for (const r of records) {
      assert.equal(r.attributes["microenforcer.sensor.detection"], "preload", argsOf(r));
      assert.equal(r.attributes["k8s.container.name"], "app");
      assert.equal(r.attributes["microenforcer.exec.session_pid"], shell?.attributes["process.pid"]);
    }
  });

  it("kills an exec session under a policy that blocks them, which the exec webhook let through while the injector was down", async () => {
    await env.applyPolicy("no-exec", { enforcementMode: "enforce", controls: { containerExec: { block: true } } }, namespace);
    const guarded = await startTestNginx(env, namespace, "no-exec");
    await env.stopInjector();
    const session = await guarded.exec("app", ["sleep", "30"]);
    assert.equal(session.code, 137, "killed by SIGKILL (128 + 9)");
    const [violation] = await env.records(guarded, (r) => r.eventName === "microenforcer.policy.violation");
    assert.equal(violation?.attributes["microenforcer.control"], "containerExec");
  });
});
