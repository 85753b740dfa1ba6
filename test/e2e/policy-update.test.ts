/**
 * Editing a RuntimePolicy through the API changes what a running sidecar records, without
 * a restart: the injector patches the policy annotation of the running pod, the kubelet
 * refreshes the downward-API file made from it, and the sidecar reloads that file.
 *
 * No kubelet runs here: after the injector has patched the pod in the API, the test does
 * the kubelet's part — it rewrites the pod's downward-API volume from the API's pod, with
 * the kubelet's atomic `..data` symlink swap (PlayedPod.refreshDownwardApi).
 */
import assert from "node:assert/strict";
import type { PlayedPod } from "../infra/podman/pod.ts";
import { embeddedPolicy, SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { clientArgs, isClientSession, runClient, startTestNginx } from "./test-nginx.ts";

const POLICY = "live-edit";
const withCommandLines = (fullCommandArguments: boolean) => ({ enforcementMode: "audit", forensics: { fullCommandArguments } });

describe("e2e: RuntimePolicy edited through the API", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;
  let pod: PlayedPod;

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
    const sidecarStart = await pod.inspect(SIDECAR, "{{.State.StartedAt}} {{.RestartCount}}");
    await env.applyPolicy(POLICY, withCommandLines(true), namespace);
    const updated = await eventually("the injector to update the running pod's policy", async () => {
      const current = await env.getPod(namespace, pod.name);
      return embeddedPolicy(current)?.spec.forensics.fullCommandArguments === true ? current : undefined;
    });
    await pod.refreshDownwardApi(updated);
    const [reloaded] = await env.records(pod, (r) => r.eventName === "microenforcer.sensor.status" && String(r.body).startsWith(`policy reloaded: ${POLICY}`));
    assert.ok(reloaded, "the sidecar reported the reload");

    assert.equal((await runClient(pod, "/after")).code, 0);
    const sessions = await env.records(pod, isClientSession, 2);
    assert.deepEqual(sessions.map((r) => r.attributes["process.command_args"]), [undefined, clientArgs("/after")]);
    assert.equal(await pod.inspect(SIDECAR, "{{.State.StartedAt}} {{.RestartCount}}"), sidecarStart, "the sidecar was not restarted");
  });
});
