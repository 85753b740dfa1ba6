/**
 * Editing a RuntimePolicy through the API changes what a running sidecar records, without
 * a restart: the injector patches the policy annotation of the running pod, the kubelet
 * refreshes the downward-API file made from it, and the sidecar reloads that file.
 */
import assert from "node:assert/strict";
import { embeddedPolicy, SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import type { RunningPod } from "./pods.ts";
import { clientArgs, isClientSession, runClient, startTestNginx } from "./test-nginx.ts";

const POLICY = "live-edit";
const withCommandLines = (fullCommandArguments: boolean) => ({ enforcementMode: "audit", forensics: { fullCommandArguments } });

describe("e2e: RuntimePolicy edited through the API", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;
  let pod: RunningPod;

  suiteEnvironment("e2e-policy", async (started, ns) => {
    [env, namespace] = [started, ns];
    await env.applyPolicy(POLICY, withCommandLines(false), namespace);
    pod = await startTestNginx(env, namespace, POLICY);
  });

  it("records no command lines under the first version", async () => {
    assert.equal((await runClient(pod, "/before")).code, 0);
    const [exec] = await env.records(pod, isClientSession);
    assert.ok(exec, "the session's process record reached the collector");
    assert.equal(exec.attributes["process.command_line"], undefined);
  });

  it("records command lines after the edit, in the same sidecar", async () => {
    const sidecarBefore = await pod.status(SIDECAR);
    await env.applyPolicy(POLICY, withCommandLines(true), namespace);
    await eventually("the injector to update the running pod's policy", async () => {
      const current = await env.getPod(namespace, pod.name);
      return embeddedPolicy(current)?.spec.forensics.fullCommandArguments === true ? current : undefined;
    });
    const [reloaded] = await env.records(pod, (r) => r.eventName === "microenforcer.sensor.status" && String(r.body).startsWith(`policy reloaded: ${POLICY}`));
    assert.ok(reloaded, "the sidecar reported the reload");

    assert.equal((await runClient(pod, "/after")).code, 0);
    const sessions = await env.records(pod, isClientSession, 2);
    assert.deepEqual(sessions.map((r) => r.attributes["process.command_args"]), [undefined, clientArgs("/after")]);
    const sidecarAfter = await pod.status(SIDECAR);
    assert.equal(sidecarAfter?.containerID, sidecarBefore?.containerID, "the same sidecar container");
    assert.equal(sidecarAfter?.restartCount, 0, "the sidecar was not restarted");
  });
});
