/**
 * The seed scenario, end to end with the real parts: `kubectl apply -k manifests/` on a
 * real kube-apiserver, a labelled namespace, a pod created through the API and mutated by
 * the injector (called by the apiserver over TLS, trusting the caBundle the injector's
 * bootstrap patched in), the stored pod scheduled and run by the node's kubelet, a
 * `kubectl exec` session into it, and the records of that session in the real
 * OpenTelemetry Collector.
 *
 * Which container the session ran in, and that a policy can block it, is asserted in
 * exec-session-runc.test.ts.
 */
import assert from "node:assert/strict";
import { SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { kubectlJson } from "./kube.ts";
import type { Pod, RunningPod } from "./pods.ts";
import { clientArgs, HTTPS_PORT, isClientConnection, isClientSession, runClient, testNginx } from "./test-nginx.ts";

describe("e2e: seed scenario (apiserver, injector, kubelet, collector)", function () {
  this.timeout(60_000);
  let env: Environment;
  let namespace: string;
  let stored: Pod;

  suiteEnvironment("e2e-seed", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  it("installs from the manifests; the injector patches its CA into the webhook configuration", async () => {
    const crd = await env.kubectl(["get", "crd", "runtimepolicies.microenforcer.dev", "-o", "name"]);
    assert.equal(crd.trim(), "customresourcedefinition.apiextensions.k8s.io/runtimepolicies.microenforcer.dev");
    assert.equal(await env.caBundle(), await env.injectorCa());
    // The installed RBAC lets the injector read its own pod (for the sidecar image), and no other verb on pods there.
    const can = (verb: string) => env.kubectl(["auth", "can-i", verb, "pods", "-n", "microenforcer-system", "--as", "system:serviceaccount:microenforcer-system:microenforcer-injector"]).then((out) => out.trim(), () => "no");
    assert.equal(await can("get"), "yes");
    assert.equal(await can("delete"), "no");
  });

  it("mutates the pod a Deployment creates through the API", async () => {
    // The webhooks fail open: a mutated pod proves the apiserver reached the injector over
    // TLS, trusting the caBundle the injector patched in.
    const { metadata, spec } = testNginx(namespace, env.images.app) as { metadata: { labels: Record<string, string> }; spec: object };
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "test-nginx", namespace },
      spec: { replicas: 1, selector: { matchLabels: metadata.labels }, template: { metadata: { labels: metadata.labels }, spec } },
    };
    await env.kubectl(["create", "-f", "-"], JSON.stringify(deployment));
    stored = await eventually("the Deployment's pod", async () => {
      const pods = (await kubectlJson(env.cp, ["--namespace", namespace, "get", "pods", "--selector", "app=test-nginx"])) as { items: Pod[] };
      return pods.items[0];
    });
    const sidecar = stored.spec.initContainers?.find((c) => c.name === SIDECAR);
    assert.ok(sidecar, "the sidecar was injected");
    assert.equal(sidecar.restartPolicy, "Always", "a native sidecar on this Kubernetes version");
    assert.equal(sidecar.image, env.images.microenforcer);
    assert.equal(stored.spec.shareProcessNamespace, true);
    for (const container of stored.spec.containers) {
      assert.deepEqual(container.env?.find((e) => e.name === "MICROENFORCER_CONTAINER"), { name: "MICROENFORCER_CONTAINER", value: container.name });
    }
    assert.ok(stored.metadata.annotations?.["microenforcer.dev/status"]);
  });

  describe("the stored pod on the node", () => {
    let pod: RunningPod;
    const path = "/seed";

    before(async () => {
      pod = await env.runPod(stored);
      const client = await runClient(pod, path);
      assert.equal(client.code, 0, client.stderr);
      assert.equal(client.stdout, `hello from ${path}\n`);
    });

    it("records the exec session's process with its full command line, in the pod", async () => {
      const [exec] = await env.records(pod, isClientSession);
      assert.ok(exec, "the exec session's process record reached the collector");
      assert.equal(exec.attributes["process.command_line"], clientArgs(path).join(" "));
      assert.deepEqual(exec.attributes["process.command_args"], clientArgs(path));
      assert.equal(exec.attributes["process.executable.path"], "/bin/busybox");
      // The semantic conventions' split: the executable's name, and argv[0] as the command.
      assert.equal(exec.attributes["process.executable.name"], "busybox");
      assert.equal(exec.attributes["process.command"], "wget");
      assert.equal(exec.attributes["process.args_count"], clientArgs(path).length);
      assert.equal(exec.attributes["process.interactive"], false, "kubectl exec without -t: no terminal");
      assert.match(String(exec.attributes["log.record.uid"]), /^[0-9A-HJKMNP-TV-Z]{26}$/);
      assert.equal(exec.attributes["process.user.id"], 1000);
      assert.equal(exec.resource["k8s.pod.name"], stored.metadata.name);
      assert.equal(exec.resource["k8s.namespace.name"], namespace);
      assert.equal(exec.resource["k8s.node.name"], env.nodeName);
      // What the injector knew at admission: the workload, and the container's image.
      assert.equal(exec.resource["k8s.replicaset.name"], stored.metadata.ownerReferences?.find((owner) => owner.kind === "ReplicaSet")?.name);
      assert.equal(exec.resource["k8s.deployment.name"], "test-nginx");
      const image = String(stored.spec.containers.find((c) => c.name === exec.attributes["k8s.container.name"])?.image);
      assert.equal(exec.attributes["container.image.name"], image.replace(/:[^:/]+$/, ""));
    });

    it("records the client's connection with the peer's address and port", async () => {
      const [connection] = await env.records(pod, isClientConnection);
      assert.ok(connection, "the client's connection record reached the collector");
      assert.equal(connection.attributes["network.peer.address"], "127.0.0.1");
      assert.equal(connection.attributes["network.peer.port"], HTTPS_PORT);
      assert.equal(connection.attributes["network.transport"], "tcp");
      assert.equal(connection.attributes["server.port"], HTTPS_PORT);
      assert.equal(connection.attributes["server.address"], undefined, "no name resolved: an address is not a name");
      assert.match(String(connection.attributes["network.connection.state"]), /^(established|fin_wait_[12]|time_wait|close_wait|last_ack|closed)$/);
      assert.deepEqual(connection.attributes["process.command_args"], clientArgs(path));
      assert.equal(connection.resource["k8s.pod.name"], stored.metadata.name);
    });

    it("records the server's side in the nginx container", async () => {
      const [listen] = await env.records(pod, (r) => r.eventName === "microenforcer.network.listen" && r.attributes["network.local.port"] === HTTPS_PORT);
      assert.ok(listen, "the server's listen record reached the collector");
      assert.equal(listen.attributes["k8s.container.name"], "nginx");
      assert.equal(listen.attributes["microenforcer.exec.origin"], "container-init");
      assert.equal(listen.attributes["network.local.address"], "127.0.0.1");
      assert.equal(listen.attributes["network.connection.state"], "listen");
    });
  });
});
