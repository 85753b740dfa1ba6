/**
 * The injector's failure modes as the real admission chain applies them: the injector's
 * warnings reach kubectl; with the injector down, the manifests' fail-open configuration
 * admits pods without the sidecar and the apiserver's own warning (log line and fail-open
 * metric) says so; the documented fail-closed configuration refuses them instead.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { POLICY_ANNOTATION, SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";

const WEBHOOK = "namespace.inject.microenforcer.dev";

describe("e2e: injector warnings, down, fail-open and fail-closed", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;

  suiteEnvironment("e2e-webhook", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  const pod = (name: string, annotations: Record<string, string> = {}) => ({
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, annotations },
    spec: { containers: [{ name: "app", image: env.images.app, command: ["sleep", "3600"] }] },
  });
  const sidecarOf = async (name: string) => (await env.getPod(namespace, name)).spec.initContainers?.find((c) => c.name === SIDECAR);

  it("passes the injector's admission warnings on to kubectl", async () => {
    const created = await env.cp.kubectl(["create", "-f", "-"], { input: JSON.stringify(pod("warned", { [POLICY_ANNOTATION]: "no-such-policy" })) });
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /Warning: microenforcer: RuntimePolicy 'no-such-policy' named by the pod does not exist/);
    assert.ok(await sidecarOf("warned"), "injected all the same");
  });

  it("fail-open (the manifests' default): admits pods without the sidecar while the injector is down", async () => {
    await env.stopInjector();
    const created = await env.cp.kubectl(["create", "-f", "-"], { input: JSON.stringify(pod("admitted")) });
    assert.equal(created.code, 0, created.stderr);
    assert.equal(await sidecarOf("admitted"), undefined);
    // What an operator sees: the apiserver's warning in its log, and its fail-open counter.
    assert.match(await readFile(env.cp.logs.apiserver, "utf8"), new RegExp(`Failed calling webhook, failing open ${WEBHOOK}`));
    const metrics = await env.kubectl(["get", "--raw", "/metrics"]);
    assert.match(metrics, new RegExp(`apiserver_admission_webhook_fail_open_count\\{name="${WEBHOOK}",type="admit"\\} 1`));
  });

  it("fail-closed (failurePolicy: Fail, --fail-closed): refuses pods while the injector is down, injects once it is back", async () => {
    await env.kubectl(["patch", "mutatingwebhookconfiguration", "microenforcer-injector", "--type=json", "-p", JSON.stringify([0, 1, 2].map((i) => ({ op: "replace", path: `/webhooks/${i}/failurePolicy`, value: "Fail" })))]);
    const refused = await env.cp.kubectl(["create", "-f", "-"], { input: JSON.stringify(pod("refused")) });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`failed calling webhook "${WEBHOOK}"`));
    assert.match((await env.cp.kubectl(["--namespace", namespace, "get", "pod", "refused"])).stderr, /NotFound/);

    await env.startInjector({ failClosed: true });
    await env.kubectl(["create", "-f", "-"], JSON.stringify(pod("refused")));
    assert.ok(await sidecarOf("refused"), "injected once the injector serves again");
  });
});
