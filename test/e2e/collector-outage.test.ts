/**
 * A collector that is down for a while (a restart, a rollout) loses nothing: what the
 * sidecar recorded meanwhile waits in its spool (the pod's emptyDir) and arrives once the
 * collector is back on the same address.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { suiteEnvironment, type Environment } from "./environment.ts";
import type { RunningPod } from "./pods.ts";
import { clientArgs, isClientConnection, isClientSession, runClient, testNginx } from "./test-nginx.ts";

/** Several of the sidecar's retry intervals (at most 5 s each). */
const OUTAGE_MS = 15_000;

describe("e2e: collector down, then up", function () {
  this.timeout(120_000);
  let env: Environment;
  let pod: RunningPod;

  suiteEnvironment("e2e-outage", async (started, namespace) => {
    env = started;
    pod = await env.runPod(await env.createPod(testNginx(namespace, env.images.app)));
  });

  it("delivers what was recorded while the collector was down once it is back, and reports no loss", async () => {
    const path = "/during-outage";
    await env.stopCollector();
    assert.equal((await runClient(pod, path)).code, 0);
    await sleep(OUTAGE_MS);
    await env.startCollector();
    const [session] = await env.records(pod, (r) => isClientSession(r) && isDeepStrictEqual(r.attributes["process.command_args"], clientArgs(path)), 1, 60_000);
    assert.ok(session, "the session's process record arrived after the outage");
    const [connection] = await env.records(pod, (r) => isClientConnection(r) && isDeepStrictEqual(r.attributes["process.command_args"], clientArgs(path)));
    assert.ok(connection, "the session's connection record arrived after the outage");
    assert.deepEqual(await env.recordsSoFar(pod, (r) => r.attributes["microenforcer.loss.reason"] !== undefined), []);
  });
});
