/**
 * What the kubelet does to a pod with the injected sidecar, on the test node: it starts the
 * app containers once the native sidecar's startupProbe says the sensor watches, and
 * restarts the sidecar when the app kills it; it runs
 * exec probes and `kubectl debug` containers through the runtime, into the pod the sidecar
 * watches; it completes a Job whose pod has a native sidecar; and it holds the sidecar to
 * its memory limit in a real cgroup.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { kubectlJson } from "./kube.ts";
import { podHandle, type RunningPod } from "./pods.ts";
import { isClientSession, runClient, testNginx } from "./test-nginx.ts";

const APP_UID = 1000;
const isTrigger = (r: CollectedLogRecord) => r.eventName === "microenforcer.sensor.status" && r.attributes["microenforcer.sensor.trigger"] !== undefined;
const execOf = (comm: string) => (r: CollectedLogRecord) => r.eventName === "microenforcer.process.exec" && r.attributes["microenforcer.process.comm"] === comm;

describe("e2e: the kubelet and the sidecar", function () {
  this.timeout(120_000);
  let env: Environment;
  let namespace: string;

  suiteEnvironment("e2e-kubelet", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  describe("a running pod", () => {
    let pod: RunningPod;

    before(async () => {
      const nginx = testNginx(namespace, env.images.app) as { spec: { containers: Array<Record<string, unknown>> } };
      // An exec probe: the kubelet runs it through the runtime, as `kubectl exec` does.
      nginx.spec.containers[1]!.readinessProbe = { exec: { command: ["true"] }, periodSeconds: 2 };
      pod = await env.runPod(await env.createPod(nginx));
    });

    it("starts the app containers once the sidecar watches: their first processes are seen starting", async () => {
      const current = await pod.get();
      const sidecar = current.status?.initContainerStatuses?.find((status) => status.name === SIDECAR);
      assert.ok(sidecar?.state.running, "the sidecar runs as a restartable init container");
      assert.equal(sidecar.started, true, "its startupProbe succeeded");
      for (const app of current.status?.containerStatuses ?? []) {
        assert.ok(Date.parse(sidecar.state.running.startedAt) <= Date.parse(app.state.running!.startedAt), `${app.name} started after the sidecar`);
      }
      for (const container of ["nginx", "app"]) {
        const [first] = await env.records(pod, (r) => r.eventName === "microenforcer.process.exec" && r.attributes["k8s.container.name"] === container && r.attributes["microenforcer.exec.origin"] === "container-init");
        assert.ok(first, `the first process record of ${container} reached the collector`);
        // Found already running (`startup`), a short first command would have gone unseen.
        assert.equal(first.attributes["microenforcer.sensor.detection"], "trigger", `${container}'s first process seen as it started`);
      }
    });

    it("records the kubelet's exec probe as its container's probe, not an exec session, and the pod gets Ready", async () => {
      await eventually("the pod to be Ready", async () => ((await pod.get()).status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true ? true : undefined));
      // Every 2 s, from when the app container started (the sidecar watched by then); summarized.
      const [probe] = await env.records(pod, execOf("true"));
      assert.ok(probe, "the probe's process record reached the collector");
      assert.equal(probe.attributes["microenforcer.exec.origin"], "probe");
      assert.equal(probe.attributes["process.parent_pid"], undefined, "PPID 0: started from outside the pod");
      assert.equal(probe.attributes["k8s.container.name"], "app");
    });

    it("runs the sidecar in a real cgroup with its memory limit, and it stays under it", async () => {
      const cgroup = async (file: string) => {
        const result = await pod.exec(SIDECAR, ["cat", `/sys/fs/cgroup/memory/${file}`]);
        assert.equal(result.code, 0, result.stderr);
        return result.stdout;
      };
      // cgroup v1 (this machine's memory controller): what the kubelet and runc set up.
      const limit = Number(await cgroup("memory.limit_in_bytes"));
      assert.equal(limit, 160 * 1024 * 1024, "the injector's 160Mi limit");
      assert.ok(Number(await cgroup("memory.max_usage_in_bytes")) < limit);
      assert.match(await cgroup("memory.oom_control"), /^oom_kill 0$/m);
      assert.equal((await pod.status(SIDECAR))?.restartCount, 0);
    });

    it("records a `kubectl debug` container's processes in the pod", async () => {
      const command = ["sh", "-c", "sleep 1; sleep 7"];
      const debug = await env.cp.kubectl(["--namespace", namespace, "debug", pod.name, `--image=${env.images.app}`, "--container=debugger", "--target=app", "--", ...command]);
      assert.equal(debug.code, 0, debug.stderr);
      const [shell] = await env.records(pod, (r) => execOf("sh")(r) && isDeepStrictEqual(r.attributes["process.command_args"], command));
      assert.ok(shell, "the debug container's process record reached the collector");
      // No name (the injector never saw this container), but the one the kubelet reports.
      const debugContainer = await pod.status("debugger");
      assert.equal(`containerd://${String(shell.attributes["container.id"])}`, debugContainer?.containerID);
    });

    it("restarts a sidecar the app killed, and the new one records again", async () => {
      // The app runs as the sidecar's UID in the same PID namespace: it can kill it.
      const kill = await pod.exec("app", ["killall", "-KILL", "node"]);
      assert.equal(kill.code, 0, kill.stderr);
      const restarted = await eventually(
        "the kubelet to restart the sidecar",
        async () => {
          const status = await pod.status(SIDECAR);
          return status?.restartCount === 1 && status.state.running !== undefined ? status : undefined;
        },
        60_000,
      );
      assert.equal(restarted.lastState.terminated?.exitCode, 137, "killed by SIGKILL");
      // Who reads the records sees the restart: a second sensor start for the pod.
      assert.equal((await env.records(pod, isTrigger, 2)).length, 2);
      assert.equal((await runClient(pod, "/after-restart")).code, 0);
      const sessions = await env.records(pod, isClientSession);
      assert.ok(sessions.length > 0, "the new sidecar recorded a session");
    });
  });

  it("completes a Job whose pod has the native sidecar, which delivers what it recorded before the kubelet stops it", async () => {
    const job = {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "batch", namespace },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: "Never",
            securityContext: { runAsUser: APP_UID, runAsGroup: APP_UID },
            containers: [{ name: "work", image: env.images.app, command: ["sh", "-c", "sleep 3"] }],
          },
        },
      },
    };
    await env.kubectl(["create", "-f", "-"], JSON.stringify(job));
    await env.kubectl(["--namespace", namespace, "wait", "job/batch", "--for=condition=Complete", "--timeout=90s"]);
    const pods = (await kubectlJson(env.cp, ["--namespace", namespace, "get", "pods", "--selector", "job-name=batch"])) as { items: Array<{ metadata: { name: string } }> };
    const [name] = pods.items.map((item) => item.metadata.name);
    assert.ok(name !== undefined, "the Job's pod");
    const jobPod = podHandle(env.cp, namespace, name);
    const stored = await jobPod.get();
    assert.equal(stored.status?.phase, "Succeeded");
    assert.ok(stored.spec.initContainers?.some((c) => c.name === SIDECAR && c.restartPolicy === "Always"), "injected as a native sidecar");
    assert.equal((await jobPod.status(SIDECAR))?.state.terminated?.exitCode, 0, "the kubelet stopped the sidecar once the work was done, and it exited cleanly");
    // The work's exit happens just before the kubelet stops the sidecar: its record arriving
    // shows the sidecar delivers what it has on SIGTERM.
    // By its argv: busybox's sh runs `sleep` by exec'ing /proc/self/exe, so its comm may be `exe`.
    const [exit] = await env.records(jobPod, (r) => r.eventName === "microenforcer.process.exit" && isDeepStrictEqual(r.attributes["process.command_args"], ["sleep", "3"]));
    assert.ok(exit, `the work's exit record reached the collector; the sidecar's log:\n${await jobPod.logs(SIDECAR).catch(String)}`);
    if (exit.attributes["k8s.container.name"] !== "work") {
      const history = await env.recordsSoFar(jobPod, (r) => r.attributes["process.pid"] === exit.attributes["process.pid"] || r.eventName?.startsWith("microenforcer.sensor") === true);
      assert.fail(`the exit record names the work's container; what the sidecar said of its PID:\n${history.map((r) => JSON.stringify(r)).join("\n")}`);
    }
  });
});
