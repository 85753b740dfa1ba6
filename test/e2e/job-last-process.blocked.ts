/**
 * BLOCKED — not part of `npm test` (the name does not end in .test.ts) until the sidecar
 * accounts for a Job's last processes before the kubelet stops it. Run it alone:
 *
 *   npm run build && npx mocha --no-config --extension ts --timeout 20000 test/e2e/job-last-process.blocked.ts
 *
 * When a Job's container exits, the kubelet stops the pod's native sidecar (SIGTERM) at
 * once. On the test node, a Job running `sh -c "sleep 3; cat /etc/hostname"` yields
 * records of sh, sleep and their exits, and none of `cat`: no exec record and no
 * `microenforcer.sensor.gap` either, though `cat` ran while the sidecar watched (the
 * sidecar logs "stopped on SIGTERM" right after). What a short last command of a batch
 * job did is then lost without a trace — the sidecar states its blind spots elsewhere.
 *
 * The user's expectation, asserted here: the last command is recorded, or counted in a
 * gap record.
 */
import assert from "node:assert/strict";
import { SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { kubectlJson } from "./kube.ts";
import { podHandle } from "./pods.ts";

describe("e2e: a Job's last process", function () {
  this.timeout(120_000);
  let env: Environment;
  let namespace: string;

  suiteEnvironment("e2e-job-last", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  it("is recorded, or counted as a gap, before the kubelet stops the sidecar", async () => {
    const job = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "last", namespace },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: "Never",
            securityContext: { runAsUser: 1000, runAsGroup: 1000 },
            // The sleep: the sidecar watches by the time the last command runs.
            containers: [{ name: "work", image: env.images.app, command: ["sh", "-c", "sleep 3; cat /etc/hostname"] }],
          },
        },
      },
    };
    await env.kubectl(["create", "-f", "-"], JSON.stringify(job));
    await env.kubectl(["--namespace", namespace, "wait", "job/last", "--for=condition=Complete", "--timeout=90s"]);
    const pods = (await kubectlJson(env.cp, ["--namespace", namespace, "get", "pods", "--selector", "job-name=last"])) as { items: Array<{ metadata: { name: string } }> };
    const jobPod = podHandle(env.cp, namespace, pods.items[0]!.metadata.name);
    assert.ok((await jobPod.status(SIDECAR))?.state.terminated, "the kubelet stopped the sidecar");
    const [sleep] = await env.records(jobPod, (r) => r.eventName === "microenforcer.process.exec" && r.attributes["microenforcer.process.comm"] === "sleep");
    assert.ok(sleep, "the sidecar watched the Job");
    const accounted = await env.records(jobPod, (r) => (r.eventName === "microenforcer.process.exec" && r.attributes["microenforcer.process.comm"] === "cat") || r.eventName === "microenforcer.sensor.gap");
    assert.ok(accounted.length > 0, "cat was recorded, or counted in a gap record");
  });
});
