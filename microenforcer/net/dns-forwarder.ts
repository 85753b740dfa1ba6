/**
 * The opt-in DNS forwarder (`spec.dns.forwarder`): the pod's resolver points at it
 * (injector: dnsConfig), it relays every query unchanged to the upstream servers (the
 * cluster DNS) over the transport the client used, relays the answer unchanged (a
 * truncated UDP answer stays truncated, and the client retries over TCP, which is relayed
 * too), and records which addresses answered which name.
 *
 * It never makes answers up: when every upstream fails it answers SERVFAIL at once, so a
 * resolver with a second nameserver moves on instead of waiting for its timeout.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { isIPv6, createConnection, createServer, type Server, type Socket } from "node:net";
import type { Endpoint } from "../sidecar-contract.ts";
import { encode, RECURSION_AVAILABLE, RECURSION_DESIRED } from "dns-packet";
import { decodeMessage, type DnsAnswerCache } from "./dns-names.ts";


export interface ForwarderConfig {
  listen: Endpoint;
  upstream: Endpoint[];
  /** Per upstream server and query. */
  timeoutMs: number;
}

/** The nameserver addresses of a resolv.conf, in order (a resolver asks each on port 53). */
export function resolvConfNameservers(text: string): string[] {
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!);
}

/** The nameservers of a resolv.conf, except the forwarder itself. */
export function resolvConfServers(text: string, self: Endpoint): Endpoint[] {
  return resolvConfNameservers(text)
    .map((host) => ({ host, port: 53 }))
    .filter((e) => !(e.host === self.host && e.port === self.port));
}

const SERVFAIL = 2;

/** A SERVFAIL answer to `query`, or undefined when the query is not a DNS message. */
export function servfail(query: Buffer): Buffer | undefined {
  const q = decodeMessage(query);
  if (q === undefined || q.type !== "query") return undefined;
  return encode({ type: "response", id: q.id ?? 0, flags: ((q.flags ?? 0) & RECURSION_DESIRED) | RECURSION_AVAILABLE | SERVFAIL, questions: q.questions ?? [] });
}

/** Queries relayed at once; beyond that a UDP query is dropped (its client retries). */
const maxInFlight = 512;

export class DnsForwarder {
  private config: ForwarderConfig;
  private readonly cache: DnsAnswerCache;
  private udp?: UdpSocket;
  private tcp?: Server;
  private readonly clients = new Set<Socket>();
  private inFlight = 0;
  readonly stats = { queries: 0, failed: 0, dropped: 0 };

  constructor(config: ForwarderConfig, cache: DnsAnswerCache) {
    this.config = config;
    this.cache = cache;
  }

  async start(): Promise<void> {
    const { host, port } = this.config.listen;
    const udp = createSocket(isIPv6(host) ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(port, host, () => {
        udp.off("error", reject);
        resolve();
      });
    });
    this.udp = udp;
    udp.on("message", (message, client) => void this.answerUdp(udp, message, client));
    const tcp = createServer((socket) => this.serveTcp(socket));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen({ port, host }, () => {
          tcp.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      udp.close();
      throw err;
    }
    this.tcp = tcp;
  }

  /** Queries from now on go to these servers; those in flight finish with the old ones. */
  setUpstream(upstream: Endpoint[]): void {
    this.config = { ...this.config, upstream };
  }

  async stop(): Promise<void> {
    this.udp?.close();
    for (const socket of this.clients) socket.destroy();
    await new Promise<void>((resolve) => (this.tcp === undefined ? resolve() : this.tcp.close(() => resolve())));
  }

  private async answerUdp(server: UdpSocket, query: Buffer, client: RemoteInfo): Promise<void> {
    if (this.inFlight >= maxInFlight) {
      this.stats.dropped++;
      return;
    }
    this.inFlight++;
    try {
      const answer = await this.relay(query, askUdp);
      if (answer !== undefined) server.send(answer, client.port, client.address);
    } finally {
      this.inFlight--;
    }
  }

  /** DNS over TCP: 2-byte length-prefixed messages, answered in order. */
  private serveTcp(socket: Socket): void {
    this.clients.add(socket);
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const query = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + query.length);
        queue = queue.then(async () => {
          const answer = await this.relay(query, askTcp);
          if (answer !== undefined && !socket.destroyed) socket.write(frame(answer));
        });
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.clients.delete(socket));
    socket.setTimeout(30_000, () => socket.destroy());
  }

  /** Asks each upstream in turn; SERVFAIL when none answers. */
  private async relay(query: Buffer, ask: (query: Buffer, upstream: Endpoint, timeoutMs: number) => Promise<Buffer>): Promise<Buffer | undefined> {
    this.stats.queries++;
    for (const upstream of this.config.upstream) {
      try {
        const answer = await ask(query, upstream, this.config.timeoutMs);
        // The answer must be to this query: same id (a stray or spoofed packet is not).
        if (answer.length < 2 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) continue;
        const packet = decodeMessage(answer);
        if (packet !== undefined) this.cache.recordResponse(packet, Date.now());
        return answer;
      } catch {
        // try the next upstream
      }
    }
    this.stats.failed++;
    return query.length >= 2 ? servfail(query) : undefined;
  }
}

function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length);
  return Buffer.concat([length, message]);
}

function askUdp(query: Buffer, upstream: Endpoint, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // A fresh socket per query: a random source port, and no id collisions between clients.
    const socket = createSocket(isIPv6(upstream.host) ? "udp6" : "udp4");
    let settled = false;
    const done = (err: Error | undefined, answer?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => done(new Error("timeout")), timeoutMs);
    socket.on("error", (err) => done(err));
    socket.on("message", (answer) => done(undefined, answer));
    socket.connect(upstream.port, upstream.host, () => socket.send(query));
  });
}

function askTcp(query: Buffer, upstream: Endpoint, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: upstream.host, port: upstream.port });
    let buffered = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, answer?: Buffer): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.setTimeout(timeoutMs, () => done(new Error("timeout")));
    socket.on("error", (err) => done(err));
    socket.on("connect", () => socket.write(frame(query)));
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) done(undefined, buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
    socket.on("close", () => done(new Error("closed before answering")));
  });
}
