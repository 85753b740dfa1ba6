/**
 * Test helper around the CoreDNS build.sh makes: a cluster DNS on one address of this
 * machine (a node's clusterDNS), answering the names a test serves and NXDOMAIN for every
 * other one (main.go says why no query leaves the machine).
 */
import { execFile, type ChildProcess } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startProcess, stopProcess, waitUntil } from "../processes.ts";

const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;

/** Builds (or reuses) CoreDNS; returns the binary's path. */
export async function buildCoreDns(): Promise<string> {
  const { stdout } = await promisify(execFile)(BUILD_SCRIPT, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split("\n").at(-1) ?? "";
}

export interface CoreDns {
  address: string;
  /** CoreDNS's output: one line per query (the `log` plugin). */
  log: string;
  stop(): Promise<void>;
}

/** CoreDNS on `address`:53 (UDP and TCP), answering `hosts` (name → address); resolves once it answers. */
export async function startCoreDns(binary: string, address: string, hosts: Record<string, string>, timeoutMillis = 30_000): Promise<CoreDns> {
  const dir = await mkdtemp(join(tmpdir(), "coredns-"));
  const corefile = join(dir, "Corefile");
  const log = join(dir, "coredns.log");
  await writeFile(
    corefile,
    `. {
    bind ${address}
    errors
    log
    hosts {
${Object.entries(hosts)
  .map(([name, ip]) => `        ${ip} ${name}\n`)
  .join("")}        fallthrough
    }
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`,
  );
  let child: ChildProcess | undefined;
  try {
    child = await startProcess(binary, log, ["-conf", corefile, "-dns.port", "53"]);
    const started = child;
    const [name, ip] = Object.entries(hosts)[0] ?? ["localhost", ""];
    await waitUntil(started, log, timeoutMillis, `CoreDNS on ${address}:53`, async () => (await resolveA(address, name)) === ip);
  } catch (error) {
    if (child !== undefined) await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const running = child;
  return {
    address,
    log,
    async stop() {
      await stopProcess(running);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The first A record `server` answers for `name` ("" when none); undefined when it does not answer within a second. */
function resolveA(server: string, name: string): Promise<string | undefined> {
  const labels = name.split(".").map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]));
  // id 1, recursion desired, one question: NAME A IN.
  const query = Buffer.concat([Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const done = (answer: string | undefined) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), 1000);
    socket.on("error", () => done(undefined));
    socket.on("message", (reply) => {
      // An answer's A record ends in its 4 address bytes: enough for the one name asked.
      const answers = reply.readUInt16BE(6);
      done(answers > 0 ? [...reply.subarray(reply.length - 4)].join(".") : "");
    });
    socket.send(query, 53, server);
  });
}
