/**
 * The pod's resolver pointed at the DNS forwarder: the kubelet's ClusterFirst rendering with
 * the forwarder first (pkg/kubelet/network/dns/dns.go), the pod's own dnsConfig merged as the
 * kubelet merges it, the API's limits kept, and every pod it must not touch left alone with
 * the reason.
 */
import assert from "node:assert/strict";
import { defaultPolicy, validatePolicy } from "../../policies/load.ts";
import type { RuntimePolicySpec } from "../../policies/schema.ts";
import type { JsonObject } from "../../webhook/json.ts";
import { applyPodDns, podDns, restorePodDns, type PodDnsInput } from "../../webhook/pod-dns.ts";

const cluster = { nameservers: ["10.96.0.10"], domain: "cluster.local" };
const spec = (extra: JsonObject = {}): JsonObject => ({ containers: [{ name: "web", image: "nginx" }], ...extra });
const policy = (dns?: object): RuntimePolicySpec =>
  validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "p" }, spec: dns === undefined ? {} : { dns } }, "test").spec;

function run(input: Partial<PodDnsInput> = {}) {
  return podDns({ spec: spec(), namespace: "shop", policy: defaultPolicy().spec, clusterDns: cluster, sidecarBindsLowPorts: true, ...input });
}

const clusterSearches = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"];

describe("webhook/pod-dns", () => {
  it("gives a ClusterFirst pod the kubelet's resolver with the forwarder first and timeout:1", () => {
    assert.deepEqual(run(), {
      change: {
        dnsConfig: {
          nameservers: ["127.0.0.1", "10.96.0.10"],
          searches: clusterSearches,
          options: [
            { name: "ndots", value: "5" },
            { name: "timeout", value: "1" },
          ],
        },
        addSysctl: false,
      },
      warnings: [],
    });
    assert.deepEqual(run({ spec: spec({ dnsPolicy: "ClusterFirstWithHostNet" }) }).change?.dnsConfig.nameservers, ["127.0.0.1", "10.96.0.10"], "without hostNetwork it is ClusterFirst");
  });

  it("names destinations out of the box: the built-in default and any policy recording network activity", () => {
    assert.ok(run({ policy: policy() }).change);
    assert.deepEqual(run({ policy: policy({ forwarder: { enabled: false } }) }), { warnings: [] }, "turned off: nothing changes, nothing to say");
    const quiet = validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "q" }, spec: { forensics: { networkActivity: false } } }, "test").spec;
    assert.deepEqual(run({ policy: quiet }), { warnings: [] }, "no connections recorded, no rule on names: no forwarder");
    const domains = validatePolicy(
      { apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "d" }, spec: { forensics: { networkActivity: false }, controls: { network: { blockedOutbound: [{ domain: "*.pool.example" }] } } } },
      "test",
    ).spec;
    assert.ok(run({ policy: domains }).change, "a domain rule needs names");
  });

  it("merges the pod's own dnsConfig as the kubelet does: servers and searches appended once, its options win", () => {
    const own = { nameservers: ["10.0.0.53", "10.96.0.10"], searches: ["corp.example", "svc.cluster.local"], options: [{ name: "ndots", value: "2" }, { name: "edns0" }, { name: "timeout", value: "3" }] };
    assert.deepEqual(run({ spec: spec({ dnsConfig: own }) }).change?.dnsConfig, {
      nameservers: ["127.0.0.1", "10.96.0.10", "10.0.0.53"],
      searches: [...clusterSearches, "corp.example"],
      options: [{ name: "ndots", value: "2" }, { name: "edns0" }, { name: "timeout", value: "3" }],
    });
  });

  it("keeps a dnsPolicy None pod's own resolver behind the forwarder, with no cluster DNS needed", () => {
    const own = { nameservers: ["192.0.2.53"], searches: ["corp.example"], options: [{ name: "attempts", value: "3" }] };
    assert.deepEqual(run({ spec: spec({ dnsPolicy: "None", dnsConfig: own }), clusterDns: undefined, namespace: undefined }).change?.dnsConfig, {
      nameservers: ["127.0.0.1", "192.0.2.53"],
      searches: ["corp.example"],
      options: [{ name: "attempts", value: "3" }, { name: "timeout", value: "1" }],
    });
  });

  it("stays within the API's limits: 3 nameservers, 32 searches of 2048 characters, saying what was left out", () => {
    const three = run({ spec: spec({ dnsConfig: { nameservers: ["10.0.0.1", "10.0.0.2"] } }) });
    assert.deepEqual(three.change?.dnsConfig.nameservers, ["127.0.0.1", "10.96.0.10", "10.0.0.1"]);
    assert.match(three.warnings.join("\n"), /at most 3 nameservers: 10\.0\.0\.2 left out/);
    const many = Array.from({ length: 31 }, (_, i) => `d${i}.example`);
    const searches = run({ spec: spec({ dnsConfig: { searches: many } }) });
    assert.equal(searches.change?.dnsConfig.searches?.length, 32);
    assert.match(searches.warnings.join("\n"), /at most 32 domains and 2048 characters: d29\.example, d30\.example left out/);
    const long = Array.from({ length: 10 }, (_, i) => `${"x".repeat(240)}${i}.example`);
    const chars = run({ spec: spec({ dnsConfig: { searches: long } }) }).change!.dnsConfig.searches!;
    assert.ok(chars.join(" ").length <= 2048 && chars.length < 13, `${chars.join(" ").length} characters`);
  });

  it("lets a sidecar without NET_BIND_SERVICE listen on port 53 through the unprivileged-port sysctl, unless the pod set it higher", () => {
    assert.equal(run({ sidecarBindsLowPorts: false }).change?.addSysctl, true);
    const sysctl = (value: string) => spec({ securityContext: { sysctls: [{ name: "net.ipv4.ip_unprivileged_port_start", value }] } });
    assert.equal(run({ sidecarBindsLowPorts: false, spec: sysctl("0") }).change?.addSysctl, false, "already low enough");
    const high = run({ sidecarBindsLowPorts: false, spec: sysctl("1024") });
    assert.equal(high.change, undefined);
    assert.match(high.warnings[0]!, /sets net\.ipv4\.ip_unprivileged_port_start=1024 and the sidecar .* could not listen on port 53; the pod.s DNS is left as it is/);
    assert.equal(run({ sidecarBindsLowPorts: true, spec: sysctl("1024") }).change?.addSysctl, false, "a root sidecar with NET_BIND_SERVICE needs no sysctl");
  });

  it("leaves alone, with the reason, every pod whose resolver it must not or cannot take over", () => {
    const cases: Array<[Partial<PodDnsInput>, RegExp]> = [
      [{ spec: spec({ hostNetwork: true }) }, /^hostNetwork pod: it resolves with the node's DNS settings/],
      [{ spec: spec({ dnsPolicy: "Default" }) }, /^dnsPolicy Default: /],
      [{ clusterDns: undefined }, /^the cluster DNS address is unknown \(no kube-system\/kube-dns Service read, no --cluster-dns\)/],
      [{ namespace: undefined }, /^the pod has no namespace/],
      [{ policy: policy({ forwarder: { listen: "127.0.0.1:5353" } }) }, /^the policy's DNS forwarder listens on 127\.0\.0\.1:5353, where no resolver asks/],
      [{ policy: policy({ forwarder: { listen: "10.1.2.3:53" } }) }, /listens on 10\.1\.2\.3:53, where no resolver asks/],
      [{ spec: spec({ dnsConfig: { nameservers: ["127.0.0.1"] } }) }, /own dnsConfig already asks 127\.0\.0\.1, where the DNS forwarder would listen/],
      [{ spec: { containers: [{ name: "dns", ports: [{ containerPort: 53, protocol: "UDP" }] }] } }, /^container dns declares port 53/],
    ];
    for (const [input, reason] of cases) {
      const result = run(input);
      assert.equal(result.change, undefined, String(reason));
      assert.equal(result.warnings.length, 1);
      assert.match(result.warnings[0]!, reason);
      assert.match(result.warnings[0]!, /its connections carry no DNS names$/);
    }
    assert.deepEqual(run({ policy: policy({ forwarder: { listen: "0.0.0.0:53" } }) }).change?.dnsConfig.nameservers, ["127.0.0.1", "10.96.0.10"], "a wildcard listener is asked on loopback");
  });

  it("puts back exactly what it changed", () => {
    const inputs: JsonObject[] = [
      spec(),
      spec({ dnsPolicy: "ClusterFirst", dnsConfig: { searches: ["corp.example"] }, securityContext: { runAsUser: 1000, sysctls: [{ name: "kernel.shm_rmid_forced", value: "1" }] } }),
      spec({ securityContext: {} }),
    ];
    for (const input of inputs) {
      const pod = structuredClone(input);
      const change = podDns({ spec: pod, namespace: "shop", policy: defaultPolicy().spec, clusterDns: cluster, sidecarBindsLowPorts: false }).change!;
      const before = applyPodDns(pod, change);
      assert.equal(pod.dnsPolicy, "None");
      assert.deepEqual((pod.securityContext as JsonObject).sysctls, [...(((input.securityContext as JsonObject | undefined)?.sysctls as unknown[]) ?? []), { name: "net.ipv4.ip_unprivileged_port_start", value: "0" }]);
      restorePodDns(pod, JSON.parse(JSON.stringify(before)));
      assert.deepEqual(pod, input);
    }
  });
});
