/**
 * The seed, literally: the three forensics switches on for a namespace labelled for
 * injection, then
 *
 *   kubectl run test-nginx --image=<nginx image>
 *   kubectl exec test-nginx -- /usr/bin/curl https://www.google.com/
 *
 * and the records at the real OpenTelemetry Collector: the exec session's process (its
 * executable, its command line, its container) and its connection, with the peer's address,
 * port 443 and the DNS name curl asked for. Then the same with "full command arguments" off
 * (no command line) and "network activity" off (no connection record, and curl's lookups
 * still answered through the sidecar). Last, `kubectl create deployment`: its pod's records
 * name the ReplicaSet and Deployment the controllers made.
 *
 * Everything is real and on this machine: `kubectl apply -k manifests/` on kube-apiserver,
 * the injector called over TLS, the pod scheduled and run by the node's kubelet and
 * containerd as a root app with no securityContext, the kubelet's clusterDNS the kube-dns
 * Service's address where CoreDNS answers, www.google.com this machine's HTTPS server with
 * a certificate from a test CA the image trusts (environment.ts, www.ts).
 */
import assert from "node:assert/strict";
import type { CollectedLogRecord } from "../infra/otelcol/collector.ts";
import { POLICY_ANNOTATION, SIDECAR, suiteEnvironment, type Environment } from "./environment.ts";
import { eventually } from "./eventually.ts";
import { kubectlJson } from "./kube.ts";
import type { Pod, RunningPod } from "./pods.ts";
import { WWW } from "./www.ts";

const POLICY = "seed-forensics";
const CURL = ["/usr/bin/curl", `https://${WWW}/`];

type Switches = { processActivity: boolean; fullCommandArguments: boolean; networkActivity: boolean };

describe("e2e: the seed — kubectl run test-nginx, kubectl exec curl https://www.google.com/ (kubelet, CoreDNS, collector)", function () {
  this.timeout(90_000);
  let env: Environment;
  let namespace: string;
  let stored: Pod;
  let pod: RunningPod;

  suiteEnvironment("e2e-seed", async (started, ns) => {
    [env, namespace] = [started, ns];
  });

  /** The switches for every pod of the namespace, as an admin sets them; resolves once the running sidecar has reloaded them. */
  async function setSwitches(forensics: Switches): Promise<void> {
    const scope = { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": namespace } } };
    await env.applyPolicy(POLICY, { scope, forensics }, namespace);
    if (pod === undefined) return;
    const { generation } = ((await kubectlJson(env.cp, ["get", "runtimepolicy", POLICY])) as { metadata: { generation: number } }).metadata;
    const [reloaded] = await env.records(pod, (r) => isReload(r) && r.attributes["microenforcer.policy.generation"] === generation);
    assert.ok(reloaded, `test-nginx's sidecar reloaded generation ${generation} of ${POLICY}`);
  }

  /** `kubectl exec test-nginx -- /usr/bin/curl https://www.google.com/`; returns the session's exec record. */
  async function curl(): Promise<CollectedLogRecord> {
    const before = (await env.recordsSoFar(pod, isCurlSession)).length;
    const output = await env.kubectl(["--namespace", namespace, "exec", "test-nginx", "--", ...CURL]);
    assert.equal(output, env.internet.www.body("/"), "curl reached www.google.com (the test's server) and trusted its certificate");
    const sessions = await env.records(pod, isCurlSession, before + 1);
    assert.equal(sessions.length, before + 1, "the session's exec record reached the collector");
    return sessions.at(-1)!;
  }

  const connectionsOf = (exec: CollectedLogRecord) => (r: CollectedLogRecord) =>
    r.eventName === "microenforcer.network.connection" && r.attributes["network.peer.port"] === 443 && r.attributes["process.pid"] === exec.attributes["process.pid"];

  it("installs from the manifests; the injector patches its CA in and may read the cluster DNS Service", async () => {
    const crd = await env.kubectl(["get", "crd", "runtimepolicies.microenforcer.dev", "-o", "name"]);
    assert.equal(crd.trim(), "customresourcedefinition.apiextensions.k8s.io/runtimepolicies.microenforcer.dev");
    assert.equal(await env.caBundle(), await env.injectorCa());
    const can = (verb: string, resource: string, ns: string) =>
      env.kubectl(["auth", "can-i", verb, resource, "-n", ns, "--as", "system:serviceaccount:microenforcer-system:microenforcer-injector"]).then((out) => out.trim(), () => "no");
    // Its own pod (for the sidecar image) and no other verb on pods there; the kube-dns Service and no other Service.
    assert.equal(await can("get", "pods", "microenforcer-system"), "yes");
    assert.equal(await can("delete", "pods", "microenforcer-system"), "no");
    assert.equal(await can("watch", "services/kube-dns", "kube-system"), "yes");
    assert.equal(await can("get", "services/kube-apiserver", "kube-system"), "no");
  });

  it("runs test-nginx as `kubectl run` creates it, injected, its resolver pointed at the sidecar's DNS forwarder", async () => {
    await setSwitches({ processActivity: true, fullCommandArguments: true, networkActivity: true });
    await env.kubectl(["--namespace", namespace, "run", "test-nginx", `--image=${env.images.nginx}`]);
    pod = await env.runPod(await env.getPod(namespace, "test-nginx"));
    stored = await pod.get();
    const app = stored.spec.containers.find((c) => c.name === "test-nginx");
    assert.ok(app, "kubectl run's container");
    assert.equal(app.securityContext, undefined, "no securityContext: a root app with the runtime's default capabilities");
    assert.deepEqual(app.env?.find((e) => e.name === "MICROENFORCER_CONTAINER"), { name: "MICROENFORCER_CONTAINER", value: "test-nginx" });
    const sidecar = stored.spec.initContainers?.find((c) => c.name === SIDECAR);
    assert.ok(sidecar, "the sidecar was injected");
    assert.equal(sidecar.restartPolicy, "Always", "a native sidecar");
    assert.equal(sidecar.image, env.images.microenforcer);
    assert.equal((sidecar.securityContext as { runAsUser?: number }).runAsUser, 0, "the app's UID");
    assert.equal(stored.spec.shareProcessNamespace, true);
    assert.equal(stored.metadata.annotations?.[POLICY_ANNOTATION], POLICY);
    // The kubelet's own ClusterFirst resolver, with the forwarder first (README, DNS names).
    assert.equal(stored.spec.dnsPolicy, "None");
    assert.deepEqual(stored.spec.dnsConfig, {
      nameservers: ["127.0.0.1", env.node.clusterDns.address],
      searches: [`${namespace}.svc.cluster.local`, "svc.cluster.local", "cluster.local"],
      options: [
        { name: "ndots", value: "5" },
        { name: "timeout", value: "1" },
      ],
    });
    assert.equal((stored.spec.securityContext as { sysctls?: unknown } | undefined)?.sysctls, undefined, "a root sidecar keeping NET_BIND_SERVICE needs no sysctl for port 53");
    const [forwarder] = await env.records(pod, (r) => r.eventName === "microenforcer.sensor.status" && String(r.body).startsWith("DNS forwarder listening on 127.0.0.1:53"));
    assert.ok(forwarder, "the sidecar's forwarder serves the pod's resolver");
    assert.deepEqual(forwarder.attributes["microenforcer.dns.upstream"], [`${env.node.clusterDns.address}:53`]);
  });

  it("records the exec session: /usr/bin/curl with its full command line, in container test-nginx", async () => {
    const exec = await curl();
    assert.equal(exec.attributes["process.executable.path"], "/usr/bin/curl");
    assert.equal(exec.attributes["process.executable.name"], "curl");
    assert.deepEqual(exec.attributes["process.command_args"], CURL);
    assert.equal(exec.attributes["process.command_line"], CURL.join(" "));
    assert.equal(exec.attributes["process.args_count"], CURL.length);
    assert.equal(exec.attributes["process.interactive"], false, "kubectl exec without -t: no terminal");
    assert.match(String(exec.attributes["log.record.uid"]), /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.equal(exec.attributes["microenforcer.exec.origin"], "exec-session");
    assert.equal(exec.attributes["k8s.container.name"], "test-nginx");
    assert.equal(exec.attributes["process.user.id"], 0);
    const app = (await pod.status("test-nginx"))?.containerID;
    assert.ok(app !== undefined && app.endsWith(String(exec.attributes["container.id"])), `container.id ${String(exec.attributes["container.id"])} is test-nginx's (${app})`);
    assert.equal(exec.resource["k8s.pod.name"], "test-nginx");
    assert.equal(exec.resource["k8s.namespace.name"], namespace);
    assert.equal(exec.resource["k8s.node.name"], env.nodeName);
    assert.equal(exec.attributes["container.image.name"], env.images.nginx.replace(/:[^:/]+$/, ""), "the image the injector saw at admission");

    const [connection] = await env.records(pod, connectionsOf(exec));
    assert.ok(connection, "curl's connection record reached the collector");
    assert.equal(connection.attributes["network.peer.address"], env.node.hostAddress, "where the cluster DNS sent www.google.com");
    assert.equal(connection.attributes["network.peer.port"], 443);
    assert.equal(connection.attributes["server.port"], 443);
    assert.match(String(connection.attributes["network.connection.state"]), /^(established|fin_wait_[12]|time_wait|close_wait|last_ack|closed)$/);
    assert.equal(connection.attributes["server.address"], WWW, "the name curl asked for");
    assert.equal(connection.attributes["microenforcer.dns.source"], "forwarder");
    assert.equal(connection.attributes["network.transport"], "tcp");
    assert.equal(connection.attributes["microenforcer.network.direction"], "outbound");
    assert.equal(connection.attributes["microenforcer.network.attribution"], "process");
    assert.equal(connection.attributes["process.executable.path"], "/usr/bin/curl");
    assert.deepEqual(connection.attributes["process.command_args"], CURL);
    assert.equal(connection.attributes["k8s.container.name"], "test-nginx");
  });

  it("records the web server's listener in test-nginx, from its container's first process", async () => {
    const [listen] = await env.records(pod, (r) => r.eventName === "microenforcer.network.listen" && r.attributes["network.local.port"] === 80);
    assert.ok(listen, "httpd's listen record reached the collector");
    assert.equal(listen.attributes["k8s.container.name"], "test-nginx");
    assert.equal(listen.attributes["microenforcer.exec.origin"], "container-init");
    assert.equal(listen.attributes["process.user.id"], 0);
    assert.equal(listen.attributes["network.connection.state"], "listen");
  });

  it("with full command arguments off: the same records, without the command line", async () => {
    await setSwitches({ processActivity: true, fullCommandArguments: false, networkActivity: true });
    const exec = await curl();
    assert.equal(exec.attributes["process.executable.path"], "/usr/bin/curl");
    assert.equal(exec.attributes["microenforcer.exec.origin"], "exec-session");
    assert.equal(exec.attributes["process.command_args"], undefined);
    assert.equal(exec.attributes["process.command_line"], undefined);
    const [connection] = await env.records(pod, connectionsOf(exec));
    assert.ok(connection, "curl's connection record reached the collector");
    assert.equal(connection.attributes["server.address"], WWW);
    assert.equal(connection.attributes["process.command_args"], undefined);
  });

  it("with network activity off: no connection record, and the pod's lookups still answered through the sidecar", async () => {
    await setSwitches({ processActivity: true, fullCommandArguments: true, networkActivity: false });
    const [relay] = await env.records(pod, (r) => r.eventName === "microenforcer.sensor.status" && String(r.body).includes("names off by policy: a transparent relay"));
    assert.ok(relay, "the forwarder stays the resolver's relay (dnsPolicy cannot change)");
    const exec = await curl();
    assert.deepEqual(exec.attributes["process.command_args"], CURL);
    // Its exit is recorded after any connection record of it would have been.
    await env.records(pod, (r) => r.eventName === "microenforcer.process.exit" && r.attributes["process.pid"] === exec.attributes["process.pid"]);
    assert.deepEqual(await env.recordsSoFar(pod, connectionsOf(exec)), []);
    assert.deepEqual(await env.recordsSoFar(pod, (r) => r.eventName === "microenforcer.network.connection" && r.attributes["process.pid"] === exec.attributes["process.pid"]), []);
  });

  it("names the workload of a Deployment's pod on its records: its ReplicaSet and Deployment", async () => {
    await env.kubectl(["--namespace", namespace, "create", "deployment", "web", `--image=${env.images.nginx}`]);
    const created = await eventually("the Deployment's pod", async () => {
      const pods = (await kubectlJson(env.cp, ["--namespace", namespace, "get", "pods", "--selector", "app=web"])) as { items: Pod[] };
      return pods.items[0];
    });
    const web = await env.runPod(created);
    const [first] = await env.records(web, (r) => r.eventName === "microenforcer.process.exec" && r.attributes["microenforcer.exec.origin"] === "container-init");
    assert.ok(first, "the web server's exec record reached the collector");
    assert.equal(first.resource["k8s.replicaset.name"], created.metadata.ownerReferences?.find((owner) => owner.kind === "ReplicaSet")?.name);
    assert.equal(first.resource["k8s.deployment.name"], "web");
  });
});

/** The exec record of a `kubectl exec` session's curl. */
function isCurlSession(r: CollectedLogRecord): boolean {
  return r.eventName === "microenforcer.process.exec" && r.attributes["microenforcer.process.comm"] === "curl" && r.attributes["microenforcer.exec.origin"] === "exec-session";
}

function isReload(r: CollectedLogRecord): boolean {
  return r.eventName === "microenforcer.sensor.status" && String(r.body).startsWith(`policy reloaded: ${POLICY}`);
}
