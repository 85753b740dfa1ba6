/**
 * The forensics switches of a RuntimePolicy, through the whole chain: the policy is created
 * through the API, the injector embeds it in the pod, and the sidecar in the running pod
 * records accordingly, as the collector shows.
 */
import assert from "node:assert/strict";
import { suiteEnvironment, type Environment } from "./environment.ts";
import { clientArgs, isClientConnection, isClientSession, runClient, startTestNginx } from "./test-nginx.ts";

/** An audit policy with every forensics switch on except those given. */
function forensics(switches: Record<string, boolean>): object {
  return { enforcementMode: "audit", forensics: { processActivity: true, fullCommandArguments: true, networkActivity: true, ...switches } };
}

describe("e2e: forensics switches", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;

  suiteEnvironment("e2e-forensics", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  it("fullCommandArguments: false — process and connection records carry no command line", async () => {
    await env.applyPolicy("no-command-lines", forensics({ fullCommandArguments: false }), namespace);
    const pod = await startTestNginx(env, namespace, "no-command-lines");
    assert.equal((await runClient(pod, "/secret-token")).code, 0);

    const [exec] = await env.records(pod, isClientSession);
    assert.ok(exec, "the session's process record reached the collector");
    assert.equal(exec.attributes["process.executable.path"], "/bin/busybox");
    assert.equal(exec.attributes["process.command_line"], undefined);
    assert.equal(exec.attributes["process.command_args"], undefined);
    const [connection] = await env.records(pod, isClientConnection);
    assert.ok(connection, "network activity is still recorded");
    assert.equal(connection.attributes["process.command_line"], undefined);
    assert.equal(connection.attributes["process.command_args"], undefined);
  });

  it("networkActivity: false — no connection or listen records, process records as before", async () => {
    await env.applyPolicy("no-network", forensics({ networkActivity: false }), namespace);
    const pod = await startTestNginx(env, namespace, "no-network");
    assert.equal((await runClient(pod, "/quiet")).code, 0);

    const [exec] = await env.records(pod, isClientSession);
    assert.ok(exec, "the session's process record reached the collector");
    assert.deepEqual(exec.attributes["process.command_args"], clientArgs("/quiet"));
    // The session ends 2 s after its connection opened (the server's delay), and records
    // leave the sidecar in order: with its exit record in, a connection record would be too.
    const [exit] = await env.records(pod, (r) => r.eventName === "microenforcer.process.exit" && r.attributes["process.pid"] === exec.attributes["process.pid"]);
    assert.ok(exit, "the session's exit record reached the collector");
    const network = (await env.recordsSoFar(pod, (r) => r.eventName?.startsWith("microenforcer.network.") === true)).map((r) => r.body);
    assert.deepEqual(network, []);
  });
});
