/**
 * The DNS forwarder between real resolvers (glibc's getent and getaddrinfo, Node's c-ares)
 * and a real DNS server (dnsmasq), all inside a network namespace the test made: answers
 * come through unchanged (A, AAAA, NXDOMAIN, a truncated answer retried over TCP), and a
 * connection to a resolved address carries the name.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { byEvent, py, truths } from "../fixtures/net/workload.ts";
import { runInPidNamespace, shellQuote, type JsonRecord } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const manyAddresses = 120;

/**
 * dnsmasq on 127.0.0.2:53 answers for svc.test (NXDOMAIN for unknown names, PTR records
 * for its hosts); the namespace's resolv.conf (bind-mounted in its own mount namespace)
 * points at `nameservers` in order. Every address is on the namespace's own loopback.
 */
const setup = (...nameservers: string[]): string => `
  ip -6 addr add fd00::10/128 dev lo || exit 95
  # getent ahostsv4 (AI_ADDRCONFIG) asks for A records only where a non-loopback IPv4 address exists.
  ip addr add 192.0.2.1/32 dev lo || exit 95
  for i in $(seq 1 ${manyAddresses}); do echo "127.0.1.$i many.svc.test"; done > $WORK/many.hosts
  /usr/sbin/dnsmasq --conf-file=/dev/null --keep-in-foreground --no-resolv --no-hosts --user=root --pid-file=$WORK/dnsmasq.pid \\
    --listen-address=127.0.0.2 --bind-interfaces --port=53 --local=/svc.test/ \\
    --host-record=api.svc.test,127.0.0.10,fd00::10 --addn-hosts=$WORK/many.hosts 2> $WORK/dnsmasq.log &
  printf '${nameservers.map((n) => `nameserver ${n}\\n`).join("")}options timeout:1 attempts:2\\n' > $WORK/resolv.conf
  mount --bind $WORK/resolv.conf /etc/resolv.conf || exit 94
`;

/** c-ares (EDNS: up to 1232-byte UDP answers) through the forwarder; prints one JSON line. */
const caresScript = `
const { Resolver } = require("node:dns").promises;
const r = new Resolver({ timeout: 2000, tries: 1 });
r.setServers(["127.0.0.1"]);
const settle = (p) => p.then((v) => v, (e) => e.code);
Promise.all([r.resolve4("api.svc.test"), r.resolve6("api.svc.test"), settle(r.resolve4("nope.svc.test")), r.resolve4("many.svc.test")])
  .then(([a, aaaa, nx, many]) => console.log("cares=" + JSON.stringify({ a, aaaa, nx, many: many.length })));
`;

describe("DNS forwarder against a real DNS server", function () {
  this.timeout(60_000);
  let dir: string;

  before(function () {
    try {
      execFileSync("/usr/sbin/dnsmasq", ["--version"], { stdio: "ignore" });
    } catch {
      throw new Error("dnsmasq is needed (apt-get install dnsmasq-base; .ci/run installs it)");
    }
    dir = mkdtempSync(join(tmpdir(), "microenforcer-dns-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("relays A, AAAA, NXDOMAIN and a truncated answer (TCP retry), and names the connections to the answers", async () => {
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: dns}\nspec:\n  dns: {forwarder: {enabled: true, listen: "127.0.0.1:53", upstream: ["127.0.0.2:53"]}}\n`,
    );
    const run = await runInPidNamespace(
      `n=0; until getent hosts api.svc.test > /dev/null; do n=$((n+1)); [ $n -gt 100 ] && exit 93; sleep 0.05; done
       echo "a=$(getent ahostsv4 api.svc.test | awk 'NR==1{print $1}')"
       echo "aaaa=$(getent ahostsv6 api.svc.test | awk 'NR==1{print $1}')"
       getent hosts nope.svc.test; echo "nx=$?"
       echo "many=$(getent ahostsv4 many.svc.test | awk '{print $1}' | sort -u | wc -l)"
       ${shellQuote(process.execPath)} -e ${shellQuote(caresScript)}
       ${py} listen tcp 127.0.0.10 8088 $WORK/l4 &
       ${py} listen tcp fd00::10 8089 $WORK/l6 &
       until [ -s $WORK/l4 ] && [ -s $WORK/l6 ]; do sleep 0.01; done
       ${py} connect tcp api.svc.test 8088 0.1
       ${py} connect tcp api.svc.test 8089 0.1
       touch $WORK/l4.stop $WORK/l6.stop; wait`,
      { network: true, beforeSensor: setup("127.0.0.1"), watchArgs: ["--policy", policy] },
    );
    const log = run.workloadLog;
    const statuses = run.records.filter((r) => r.eventName === "microenforcer.sensor.status").map((r) => r.body);
    assert.ok(statuses.some((s) => s.startsWith("DNS forwarder listening on 127.0.0.1:53 (UDP and TCP), upstream 127.0.0.2:53")), statuses.join("\n"));
    // glibc: A, AAAA, NXDOMAIN (getent exits 2: not found), and 120 addresses: more than a
    // 512-byte UDP answer holds, so the answer came truncated and glibc asked again over TCP.
    assert.match(log, /^a=127\.0\.0\.10$/m, log);
    assert.match(log, /^aaaa=fd00::10$/m);
    assert.match(log, /^nx=2$/m);
    assert.match(log, new RegExp(`^many=${manyAddresses}$`, "m"));
    const cares = JSON.parse(/^cares=(.*)$/m.exec(log)?.[1] ?? "null") as { a: string[]; aaaa: string[]; nx: string; many: number } | null;
    assert.deepEqual(cares, { a: ["127.0.0.10"], aaaa: ["fd00::10"], nx: "ENOTFOUND", many: manyAddresses });
    const dnsOverTcp = byEvent(run, "connection").filter((r) => attr(r, "network.transport") === "tcp" && attr(r, "network.peer.port") === 53);
    assert.ok(dnsOverTcp.length >= 1, "a resolver retried over TCP through the forwarder");
    // The connections to the answers carry the name the process resolved.
    const made = truths(log);
    assert.deepEqual(made.map((t) => t.peer).sort(), ["127.0.0.10", "fd00::10"]);
    for (const t of made) {
      const [r] = byEvent(run, "connection").filter((c) => attr(c, "network.peer.address") === t.peer && attr(c, "network.local.port") === t.lport);
      assert.ok(r, `connection to ${t.peer} missing`);
      assert.equal(attr(r, "server.address"), "api.svc.test");
      assert.equal(attr(r, "microenforcer.dns.source"), "forwarder");
      assert.equal(attr(r, "process.pid"), t.pid);
      assert.match(r.body, /→ api\.svc\.test \(/);
    }
  });

  it("without the forwarder, names peers by reverse lookup when the policy asks for it", async () => {
    const policy = join(dir, "reverse.yaml");
    writeFileSync(policy, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: reverse}\nspec:\n  dns: {reverseLookup: true}\n`);
    const run = await runInPidNamespace(
      `${py} listen tcp 127.0.0.10 8088 $WORK/l &
       until [ -s $WORK/l ]; do sleep 0.01; done
       ${py} connect tcp 127.0.0.10 8088 0.1
       touch $WORK/l.stop; wait`,
      { network: true, beforeSensor: setup("127.0.0.2"), watchArgs: ["--policy", policy] },
    );
    const [t] = truths(run.workloadLog);
    const [r] = byEvent(run, "connection").filter((c) => attr(c, "network.local.port") === t!.lport);
    assert.ok(r, run.workloadLog);
    // A PTR name is the address owner's word, not the name the process resolved: not server.address.
    assert.equal(attr(r, "server.address"), undefined);
    assert.equal(attr(r, "microenforcer.dns.reverse_name"), "api.svc.test");
    assert.equal(attr(r, "microenforcer.dns.source"), "reverse");
    assert.equal(attr(r, "process.pid"), t!.pid);
    // Names were wanted (network activity is recorded), but this resolver does not ask the forwarder: said, not hidden.
    const statuses = run.records.filter((s) => s.eventName === "microenforcer.sensor.status").map((s) => `${s.severityText} ${s.body}`);
    assert.ok(
      statuses.includes("WARN DNS forwarder not started: the pod's resolver (/etc/resolv.conf: nameserver 127.0.0.2) does not ask 127.0.0.1:53, so connections carry no names"),
      statuses.join("\n"),
    );
  });

  it("names out of the box as the injector sets pods up, and stays the resolver's relay when a policy turns names off", async () => {
    // The built-in default policy (no spec.dns) and a resolv.conf as the injector renders it: the forwarder first, the cluster DNS after it.
    const policy = join(dir, "names.json");
    writeFileSync(policy, JSON.stringify({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "default-forensics" } }));
    const off = JSON.stringify({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name: "names-off" }, spec: { dns: { forwarder: { enabled: false } } } });
    const lookup = (label: string) => `s=$(date +%s%N); a=$(getent ahostsv4 api.svc.test | awk 'NR==1{print $1}'); echo "${label}=$a $(( ($(date +%s%N) - s) / 1000000 ))ms"`;
    const run = await runInPidNamespace(
      `n=0; until grep -q 'DNS forwarder listening' $WORK/records.jsonl 2>/dev/null || [ $n -gt 300 ]; do n=$((n+1)); sleep 0.02; done
       ${lookup("named")}
       ${py} listen tcp 127.0.0.10 8088 $WORK/l &
       until [ -s $WORK/l ]; do sleep 0.01; done
       ${py} connect tcp api.svc.test 8088 0.3
       printf '%s' ${shellQuote(off)} > ${policy}.new && mv ${policy}.new ${policy}
       n=0; until grep -q 'names off by policy' $WORK/records.jsonl 2>/dev/null || [ $n -gt 300 ]; do n=$((n+1)); sleep 0.02; done
       ${lookup("relayed")}
       ${py} connect tcp api.svc.test 8088 0.3
       touch $WORK/l.stop; wait`,
      { network: true, beforeSensor: setup("127.0.0.1", "127.0.0.2"), watchArgs: ["--policy", policy] },
    );
    const log = run.workloadLog;
    const statuses = run.records.filter((r) => r.eventName === "microenforcer.sensor.status").map((r) => `${r.severityText} ${r.body}`);
    assert.ok(statuses.includes("INFO DNS forwarder listening on 127.0.0.1:53 (UDP and TCP), upstream 127.0.0.2:53; connections are named from its answers"), statuses.join("\n"));
    assert.ok(
      statuses.includes("INFO DNS forwarder listening on 127.0.0.1:53 (UDP and TCP), upstream 127.0.0.2:53; names off by policy: a transparent relay for the pod's resolver"),
      statuses.join("\n"),
    );
    // Both lookups answered at once, the second by the relay: no resolver timeout (1 s) on the way.
    for (const label of ["named", "relayed"]) {
      const [, address, ms] = new RegExp(`^${label}=(\\S*) (\\d+)ms$`, "m").exec(log) ?? [];
      assert.equal(address, "127.0.0.10", log);
      assert.ok(Number(ms) < 900, `${label} lookup took ${ms} ms`);
    }
    const [first, second] = truths(log);
    const named = byEvent(run, "connection").find((c) => attr(c, "network.local.port") === first!.lport && attr(c, "network.peer.port") === 8088);
    const unnamed = byEvent(run, "connection").find((c) => attr(c, "network.local.port") === second!.lport && attr(c, "network.peer.port") === 8088);
    assert.equal(named && attr(named, "server.address"), "api.svc.test");
    assert.ok(unnamed, log);
    assert.equal(attr(unnamed, "server.address"), undefined, "names off: the relay names nothing");
  });

  it("costs a resolver nothing when the forwarder is not running: loopback refuses at once and the next nameserver answers", async () => {
    const policy = join(dir, "off.yaml");
    writeFileSync(policy, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: off}\nspec:\n  dns: {forwarder: {enabled: false}}\n`);
    const run = await runInPidNamespace(
      `n=0; until getent hosts api.svc.test > /dev/null; do n=$((n+1)); [ $n -gt 100 ] && exit 93; sleep 0.05; done
       s=$(date +%s%N); getent ahostsv4 api.svc.test > /dev/null; echo "ms=$(( ($(date +%s%N) - s) / 1000000 ))"`,
      { network: true, beforeSensor: setup("127.0.0.1", "127.0.0.2"), watchArgs: ["--policy", policy] },
    );
    const ms = Number(/^ms=(\d+)$/m.exec(run.workloadLog)?.[1]);
    assert.ok(ms < 500, `the lookup took ${ms} ms with nothing on 127.0.0.1:53 (${run.workloadLog})`);
    assert.equal(run.records.filter((r) => r.eventName === "microenforcer.sensor.status" && r.body.startsWith("DNS forwarder")).length, 0, "a policy without names starts no forwarder");
  });
});
