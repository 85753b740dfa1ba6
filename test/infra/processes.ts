/** Small process and port helpers shared by the real components' test harnesses. */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { open, readFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Distinct free TCP ports on `host` (all listeners stay open until every port is known).
 * Free only now: another socket (an outgoing connection's ephemeral port) may take one
 * before the caller binds it, so a caller that can picks again on EADDRINUSE.
 */
export async function freeTcpPorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer().listen(0, host);
      await once(server, "listening");
      return server;
    }),
  );
  const ports = servers.map((server) => {
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("no TCP port");
    return address.port;
  });
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10000);
  await exited;
  clearTimeout(timer);
}

/** Whether something accepts TCP connections on host:port right now. */
export function acceptsConnections(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts `binary` with stdout and stderr appended to `logFile`. */
export async function startProcess(binary: string, logFile: string, args: string[]): Promise<ChildProcess> {
  const log = await open(logFile, "a");
  const child = spawn(binary, args, { stdio: ["ignore", log.fd, log.fd] });
  try {
    await once(child, "spawn"); // rejects with the spawn error (e.g. ENOENT)
  } finally {
    await log.close(); // the child has its own copy of the descriptor by now
  }
  child.on("error", () => {}); // later errors only come from kill() on a dead process
  return child;
}

/** Polls `ready` every 100 ms; throws with the end of the log if the process exits or time runs out. */
export async function waitUntil(child: ChildProcess, logFile: string, timeoutMillis: number, what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await ready())) {
    const exited = child.exitCode !== null || child.signalCode !== null;
    if (exited || Date.now() > deadline) {
      const tail = (await readFile(logFile, "utf8").catch(() => "")).split("\n").slice(-40).join("\n");
      const why = exited ? `the process exited (${child.exitCode ?? child.signalCode})` : `not ready after ${timeoutMillis} ms`;
      throw new Error(`${what}: ${why}; last lines of its log:\n${tail}`);
    }
    await sleep(100);
  }
}
