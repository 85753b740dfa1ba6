/**
 * Enforcement through the whole chain: a RuntimePolicy in enforce mode blocking an
 * executable, created through the API; running that executable in the pod gets it killed
 * by the sidecar, and the violation record reaches the collector (over OTLP/gRPC here; the
 * other scenarios use http/protobuf).
 */
import assert from "node:assert/strict";
import { suiteEnvironment, type Environment } from "./environment.ts";
import type { RunningPod } from "./pods.ts";
import { startTestNginx } from "./test-nginx.ts";

/** In the app image: a copy of busybox as /opt/miner/xmrig; the symlink /opt/miner/sleep makes it sleep. */
const MINER = "/opt/miner/xmrig";
const RUN_MINER = ["/opt/miner/sleep", "60"];

describe("e2e: enforce", function () {
  this.timeout(60_000);
  let env: Environment;
  let pod: RunningPod;

  suiteEnvironment(
    "e2e-enforce",
    async (started, namespace) => {
      env = started;
      await env.applyPolicy("block-miners", { enforcementMode: "enforce", controls: { executables: { blocked: ["**/xmrig"] } } }, namespace);
      pod = await startTestNginx(env, namespace, "block-miners");
    },
    { otlpProtocol: "grpc" },
  );

  it("kills a blocked executable run in the pod and records the violation", async () => {
    const started = Date.now();
    const miner = await pod.exec("app", RUN_MINER);
    assert.equal(miner.code, 137, `killed by SIGKILL (128 + 9), not after its 60 s: ${miner.stderr}`);
    assert.ok(Date.now() - started < 20_000, `killed after ${Date.now() - started} ms`);

    const [violation] = await env.records(pod, (r) => r.eventName === "microenforcer.policy.violation");
    assert.ok(violation, "the violation record reached the collector");
    assert.equal(violation.severityText, "ERROR");
    assert.equal(violation.attributes["microenforcer.control"], "executables");
    assert.equal(violation.attributes["microenforcer.rule"], "**/xmrig");
    assert.equal(violation.attributes["microenforcer.action"], "killed");
    assert.equal(violation.attributes["microenforcer.policy.name"], "block-miners");
    assert.equal(violation.attributes["microenforcer.policy.mode"], "enforce");
    // The same finding as the OTel security-rule conventions name it, for backends that key on them.
    assert.equal(violation.attributes["security_rule.name"], "**/xmrig");
    assert.equal(violation.attributes["security_rule.category"], "executables");
    assert.equal(violation.attributes["security_rule.ruleset.name"], "block-miners");
    assert.match(String(violation.attributes["security_rule.uuid"]), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(violation.attributes["process.executable.path"], MINER);
    // The executable's name, not argv[0]'s: a symlink named sleep does not hide the miner.
    assert.equal(violation.attributes["process.executable.name"], "xmrig");
    assert.equal(violation.attributes["process.command"], RUN_MINER[0]);
    assert.deepEqual(violation.attributes["process.command_args"], RUN_MINER);
  });

  it("asks about a dynamically linked program once, before main; its later runs go on by the allow table, an exec session's own first process always asks", async () => {
    // A real copy of the host's id (test/infra/podman/build.sh), so the preload library loads into it.
    const id = "/opt/dynamic/bin/id";
    const runs = [];
    // A child of the session's shell (`; true` keeps the shell from exec'ing it in place), then the session's first process itself.
    for (let i = 0; i < 3; i++) runs.push(await pod.exec("app", ["sh", "-c", `${id} -u; true`]));
    runs.push(await pod.exec("app", [id, "-u"]));
    for (const run of runs) {
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, "1000\n");
    }
    const records = await env.records(pod, (r) => r.eventName === "microenforcer.process.exec" && r.attributes["process.executable.path"] === id, 4);
    const how = (origin: string): unknown[] =>
      records.filter((r) => r.attributes["microenforcer.exec.origin"] === origin).map((r) => r.attributes["microenforcer.process.preload.verdict"]);
    assert.deepEqual(how("child").sort(), ["asked", "standing", "standing"], "the first run waited for the verdict; the sidecar's allow table, in the read-only preload volume, let the others go on");
    assert.deepEqual(how("exec-session"), ["asked"], "a process whose parent is outside the pod (what the container-exec control judges) asks, though the table holds its file");
  });

  it("leaves other programs in the pod alone", async () => {
    const shell = await pod.exec("app", ["sh", "-c", "sleep 1; echo still here"]);
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(shell.stdout, "still here\n");
  });
});
