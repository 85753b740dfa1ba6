/**
 * The naive baseline the process sensor is measured against, pspy-style: every 1 ms list
 * /proc and read the command line of each PID not in the previous listing, on a worker
 * thread so printing never delays a look. No trigger, no re-reads, no gap accounting.
 *
 * Prints the same JSON-lines shape as `microenforcer watch --format json` (only the fields
 * the bench reads), so one analysis serves both.
 *   node bench/baseline-poller.ts      (stops on SIGINT/SIGTERM)
 */
import { readFileSync, readdirSync } from "node:fs";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";

interface Seen {
  pid: number;
  args: string[];
  comm: string;
  observedAt: number;
}

const intervalMs = 1;

function line(eventName: string, observedAt: number, attributes: Record<string, unknown>): string {
  const ts = new Date(observedAt).toISOString();
  return `${JSON.stringify({ timestamp: ts, observedTimestamp: ts, eventName, attributes })}\n`;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return fallback; // gone between the listing and the read
  }
}

function poll(stop: Int32Array): void {
  const now = (): number => performance.timeOrigin + performance.now();
  let previous = new Set<string>();
  while (Atomics.load(stop, 0) === 0) {
    const current = new Set(readdirSync("/proc").filter((name) => /^\d+$/.test(name)));
    const seen: Seen[] = [];
    for (const name of current) {
      if (previous.has(name)) continue;
      const args = readOr(`/proc/${name}/cmdline`, "").split("\0").slice(0, -1);
      const comm = readOr(`/proc/${name}/comm`, "").trim();
      seen.push({ pid: Number(name), args, comm, observedAt: now() });
    }
    previous = current;
    if (seen.length > 0) parentPort!.postMessage(seen);
    Atomics.wait(stop, 0, 0, intervalMs);
  }
}

if (isMainThread) {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL(import.meta.url), { workerData: stop.buffer });
  worker.on("message", (batch: Seen[]) => {
    for (const s of batch) {
      const attributes = { "process.pid": s.pid, "process.command_args": s.args, "microenforcer.process.comm": s.comm };
      process.stdout.write(line("microenforcer.process.exec", s.observedAt, attributes));
    }
  });
  worker.on("error", (err) => {
    process.stderr.write(`baseline-poller: ${err.message}\n`);
    process.exitCode = 1;
  });
  // The same readiness line the sensor prints, so the namespace runner waits the same way.
  process.stdout.write(line("microenforcer.sensor.status", Date.now(), { "microenforcer.sensor.trigger": "baseline" }));
  const shutdown = (): void => {
    Atomics.store(stop, 0, 1);
    Atomics.notify(stop, 0);
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
} else {
  poll(new Int32Array(workerData as SharedArrayBuffer));
}
