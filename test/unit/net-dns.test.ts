/**
 * The DNS forwarder's pure parts, and the forwarder itself between a client and a scripted
 * upstream, all on 127.0.0.1 (the real-server tests are in test/integration/network-dns).
 */
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { decode, encode, RECURSION_DESIRED, type Packet } from "dns-packet";
import { DnsForwarder, resolvConfServers, servfail } from "../../microenforcer/net/dns-forwarder.ts";
import { forwarderNameserver, parseEndpoint, resolverAsks } from "../../microenforcer/sidecar-contract.ts";
import { DnsAnswerCache } from "../../microenforcer/net/dns-names.ts";

const SERVFAIL = 2;
/** The response code: the low 4 bits of the header flags. */
const rcode = (p: Packet): number => (p.flags ?? 0) & 0xf;
const query = (name: string, id = 42): Buffer => encode({ type: "query", id, flags: RECURSION_DESIRED, questions: [{ type: "A", name }] });
const answer = (name: string, id: number, addresses: Array<[type: "A" | "AAAA", address: string]>, ttl = 30): Buffer =>
  encode({ type: "response", id, flags: RECURSION_DESIRED, questions: [{ type: "A", name }], answers: addresses.map(([type, data]) => ({ type, name, ttl, data })) });

describe("DNS forwarder", () => {
  it("parses listen and upstream endpoints, and reads nameservers from resolv.conf except itself", () => {
    assert.deepEqual(parseEndpoint("10.96.0.10"), { host: "10.96.0.10", port: 53 });
    assert.deepEqual(parseEndpoint("127.0.0.1:5353"), { host: "127.0.0.1", port: 5353 });
    assert.deepEqual(parseEndpoint("[fd00::10]:53"), { host: "fd00::10", port: 53 });
    assert.deepEqual(parseEndpoint("fd00::10"), { host: "fd00::10", port: 53 });
    assert.equal(parseEndpoint("127.0.0.1:0"), undefined);
    assert.equal(parseEndpoint("127.0.0.1:dns"), undefined);
    assert.equal(parseEndpoint(""), undefined);
    const conf = "search svc.cluster.local\nnameserver 127.0.0.1\nnameserver 10.96.0.10\n  nameserver fd00::53\noptions ndots:5\n";
    assert.deepEqual(resolvConfServers(conf, { host: "127.0.0.1", port: 53 }), [
      { host: "10.96.0.10", port: 53 },
      { host: "fd00::53", port: 53 },
    ]);
  });

  it("tells whether a resolver asks the forwarder (port 53: resolv.conf has no ports), and which nameserver makes it", () => {
    const at = (text: string) => parseEndpoint(text)!;
    assert.equal(resolverAsks(["127.0.0.1", "10.96.0.10"], at("127.0.0.1:53")), true);
    assert.equal(resolverAsks(["10.96.0.10"], at("127.0.0.1:53")), false, "dnsPolicy Default, or a pod left alone");
    assert.equal(resolverAsks(["127.0.0.1"], at("127.0.0.1:5353")), false, "a resolver never asks port 5353");
    assert.equal(resolverAsks(["127.0.0.1"], at("0.0.0.0:53")), true);
    assert.equal(resolverAsks(["::1"], at("0.0.0.0:53")), false, "an IPv4 socket does not take ::1");
    assert.equal(resolverAsks(["::1"], at("[::]:53")), true);
    assert.equal(forwarderNameserver(at("127.0.0.1:53")), "127.0.0.1");
    assert.equal(forwarderNameserver(at("0.0.0.0:53")), "127.0.0.1");
    assert.equal(forwarderNameserver(at("[::1]:53")), "::1");
    assert.equal(forwarderNameserver(at("127.0.0.1:5353")), undefined);
    assert.equal(forwarderNameserver(at("10.1.2.3:53")), undefined, "not the pod's loopback: the injector cannot know the pod's address");
  });

  it("answers SERVFAIL to a query, with its id and question, and nothing to garbage", () => {
    const reply = decode(servfail(query("api.example.test", 7))!);
    assert.equal(reply.id, 7);
    assert.equal(reply.type, "response");
    assert.equal(rcode(reply), SERVFAIL);
    assert.equal(reply.questions?.[0]?.name, "api.example.test");
    assert.equal(servfail(Buffer.from("not dns")), undefined);
  });

  it("names addresses by the question asked, for their TTL but at least the minimum, and forgets the oldest past the bound", () => {
    const cache = new DnsAnswerCache(1000, 2);
    cache.recordResponse(decode(answer("api.example.test.", 1, [["A", "192.0.2.7"], ["AAAA", "2001:db8::7"]])), 0);
    assert.deepEqual(cache.lookup("192.0.2.7", 10), { name: "api.example.test", source: "forwarder" });
    assert.deepEqual(cache.lookup("2001:db8::7", 29_999), { name: "api.example.test", source: "forwarder" });
    assert.equal(cache.lookup("2001:db8::7", 30_001), undefined, "TTL 30 s");
    cache.recordResponse(decode(answer("cdn.example.test", 2, [["A", "192.0.2.8"]], 0)), 0);
    assert.equal(cache.lookup("192.0.2.8", 999)?.name, "cdn.example.test", "TTL 0 still lives the minimum");
    assert.equal(cache.lookup("192.0.2.7", 10), undefined, "bounded: the oldest went");
  });

  describe("relaying on loopback", () => {
    let upstream: Socket;
    let client: Socket;
    let forwarder: DnsForwarder;
    let cache: DnsAnswerCache;
    let port: number;
    const answers = new Map<string, (q: Packet) => Buffer | undefined>();

    before(async () => {
      upstream = createSocket("udp4");
      upstream.on("message", (message, from) => {
        const q = decode(message);
        const reply = answers.get(q.questions?.[0]?.name ?? "")?.(q);
        if (reply !== undefined) upstream.send(reply, from.port, from.address);
      });
      upstream.bind(0, "127.0.0.1");
      await once(upstream, "listening");
      // The forwarder's own port: bind an ephemeral one, free it, and listen there.
      const probe = createSocket("udp4");
      probe.bind(0, "127.0.0.1");
      await once(probe, "listening");
      port = probe.address().port;
      probe.close();
      cache = new DnsAnswerCache();
      forwarder = new DnsForwarder({ listen: { host: "127.0.0.1", port }, upstream: [{ host: "127.0.0.1", port: upstream.address().port }], timeoutMs: 300 }, cache);
      await forwarder.start();
      client = createSocket("udp4");
    });

    after(async () => {
      client.close();
      upstream.close();
      await forwarder.stop();
    });

    async function ask(message: Buffer): Promise<Packet> {
      client.send(message, port, "127.0.0.1");
      const [reply] = (await once(client, "message")) as [Buffer];
      return decode(reply);
    }

    it("relays the upstream's answer unchanged and records it", async () => {
      answers.set("api.example.test", (q) => answer("api.example.test", q.id!, [["A", "192.0.2.9"]]));
      const reply = await ask(query("api.example.test", 1234));
      assert.equal(reply.id, 1234);
      assert.deepEqual(reply.answers?.map((a) => ("data" in a ? a.data : undefined)), ["192.0.2.9"]);
      assert.equal(cache.lookup("192.0.2.9", Date.now())?.name, "api.example.test");
    });

    it("answers SERVFAIL when the upstream is silent, or answers with another id", async () => {
      answers.set("silent.example.test", () => undefined);
      assert.equal(rcode(await ask(query("silent.example.test", 5))), SERVFAIL);
      answers.set("spoofed.example.test", (q) => answer("spoofed.example.test", (q.id! + 1) & 0xffff, [["A", "192.0.2.66"]]));
      assert.equal(rcode(await ask(query("spoofed.example.test", 6))), SERVFAIL);
      assert.equal(cache.lookup("192.0.2.66", Date.now()), undefined);
    });
  });
});
