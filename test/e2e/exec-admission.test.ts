/**
 * kubectl exec and debug seen at admission, on the real kube-apiserver with the manifests'
 * exec ValidatingWebhookConfiguration: a tenant (impersonated) execs into a pod whose policy
 * blocks exec sessions in enforce mode. The blocked command is denied before the apiserver
 * looks for a node, with the injector's message on the tenant's kubectl; every session is a
 * `microenforcer.k8s.exec` record at the collector, with the tenant's user name. A
 * permitted exec goes on through the kubelet of the test node and runs.
 */
import assert from "node:assert/strict";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { EXEC_WEBHOOK_CONFIGURATION } from "./injector.ts";
import { kubectlJson } from "./kube.ts";

const TENANT = ["--as=tenant", "--as-group=tenants"];

describe("e2e: kubectl exec seen at admission", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;

  suiteEnvironment("e2e-exec", async (started, ns) => {
    [env, namespace] = [started, ns];
    await env.kubectl(["apply", "-f", "-"], JSON.stringify({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "tenant", namespace },
      rules: [
        { apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "create"] },
        { apiGroups: [""], resources: ["pods/exec", "pods/attach"], verbs: ["get", "create"] },
        { apiGroups: [""], resources: ["pods/ephemeralcontainers"], verbs: ["patch", "update"] },
      ],
    }));
    await env.kubectl(["create", "rolebinding", "tenant", "--namespace", namespace, "--role", "tenant", "--group", "tenants"]);
    const scope = { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } } };
    await env.applyPolicy("exec-strict", { priority: 100, enforcementMode: "enforce", scope, controls: { containerExec: { block: true, allowedCommands: ["ls"] } } }, namespace);
    await env.runPod(await env.createPod({ apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace }, spec: { containers: [{ name: "app", image: env.images.app, command: ["sleep", "3600"] }] } }));
    await eventually("the injector to patch the exec webhook's caBundle in", async () => {
      const config = (await kubectlJson(env.cp, ["get", "validatingwebhookconfiguration", EXEC_WEBHOOK_CONFIGURATION])) as { webhooks: Array<{ clientConfig: { caBundle?: string } }> };
      return config.webhooks.every((webhook) => webhook.clientConfig.caBundle) ? true : undefined;
    });
  });

  const tenant = (args: string[]) => env.cp.kubectl([...TENANT, "--namespace", namespace, ...args]);
  const execRecord = (action: string, argv0: string, subresource = "exec") =>
    env.collector.waitForLogRecords(
      1,
      (r: CollectedLogRecord) =>
        r.eventName === "microenforcer.k8s.exec" &&
        r.attributes["k8s.pod.name"] === "web" &&
        r.attributes["microenforcer.k8s.subresource"] === subresource &&
        r.attributes["microenforcer.action"] === action &&
        (r.attributes["process.command_args"] as string[] | undefined)?.[0] === argv0,
      20_000,
    );

  it("denies an exec of a command the pod's policy blocks, telling the tenant why, and records it", async () => {
    const result = await tenant(["exec", "web", "-c", "app", "--", "sh", "-c", "id"]);
    assert.notEqual(result.code, 0);
    assert.match(
      result.stderr,
      new RegExp(`denied the request: microenforcer: exec into pod ${namespace}/web denied: RuntimePolicy exec-strict \\(enforce mode\\) allows only containerExec\\.allowedCommands \\(ls\\); sh is not one of them`),
    );
    const [record] = await execRecord("denied", "sh");
    assert.ok(record, "a microenforcer.k8s.exec record of the denied exec");
    assert.equal(record.attributes["user.name"], "tenant");
    assert.ok((record.attributes["microenforcer.k8s.user.groups"] as string[]).includes("tenants"));
    assert.equal(record.attributes["k8s.namespace.name"], namespace);
    assert.equal(record.attributes["k8s.container.name"], "app");
    assert.deepEqual(record.attributes["process.command_args"], ["sh", "-c", "id"]);
    assert.equal(record.attributes["microenforcer.policy.name"], "exec-strict");
    // The rule as the sidecar's containerExec finding names it (OTel security-rule conventions).
    assert.equal(record.attributes["security_rule.name"], "allowedCommands: ls");
    assert.equal(record.attributes["security_rule.category"], "containerExec");
    assert.equal(record.attributes["security_rule.ruleset.name"], "exec-strict");
    assert.equal(record.severityText, "ERROR");
    assert.equal(record.resource["service.name"], "microenforcer-injector");
  });

  it("admits an exec of an allowed command and records it with its user", async () => {
    const result = await tenant(["exec", "web", "-c", "app", "--", "ls", "/"]);
    // Admitted, and run by the node's kubelet.
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^bin$/m);
    const [record] = await execRecord("allowed", "ls");
    assert.ok(record, "a microenforcer.k8s.exec record of the admitted exec");
    assert.equal(record.attributes["user.name"], "tenant");
    assert.equal(record.severityText, "INFO");
  });

  it("denies a debug container whose command the policy blocks", async () => {
    const result = await tenant(["debug", "web", `--image=${env.images.app}`, "--container=dbg", "--", "sh"]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, new RegExp(`microenforcer: ephemeral container into pod ${namespace}/web denied: RuntimePolicy exec-strict`));
    const [record] = await execRecord("denied", "sh", "ephemeralcontainers");
    assert.ok(record, "a record of the denied debug container");
    assert.equal(record.attributes["k8s.container.name"], "dbg");
  });
});
