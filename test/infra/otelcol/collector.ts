/**
 * Test helper around the real OpenTelemetry Collector built by build.sh: OTLP gRPC and
 * HTTP receivers on loopback (or on another local address, e.g. where a test node's pods
 * reach this machine), a file exporter writing OTLP JSON lines we read back.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { flattenLogsRequest, type FlatLogRecord, type OtlpLogsRequest } from "../../../microenforcer/replay/otlp-json.ts";
import { acceptsConnections, freeTcpPorts, stopProcess } from "../processes.ts";

const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;

/** Builds (or reuses) the collector; returns the binary's path. */
export async function buildCollector(): Promise<string> {
  const { stdout } = await promisify(execFile)(BUILD_SCRIPT, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split("\n").at(-1) ?? "";
}

/** The sidecar's records as the collector exported them (the product's own reader for file exports). */
export type CollectedLogRecord = FlatLogRecord;

export interface Ports {
  grpc: number;
  http: number;
}

export interface Collector {
  ports: Ports;
  /** For OTEL_EXPORTER_OTLP_ENDPOINT. */
  endpoint(protocol: "grpc" | "http/protobuf" | "http/json"): string;
  /** The file exporter's output (OTLP/JSON, one request per line), as `policy test` reads it. */
  exportFile: string;
  readLogRecords(): Promise<CollectedLogRecord[]>;
  /**
   * The records matching `where`, once at least `count` of them arrived or the timeout
   * passed (the file exporter writes on a timer).
   */
  waitForLogRecords(count: number, where?: (record: CollectedLogRecord) => boolean, timeoutMillis?: number): Promise<CollectedLogRecord[]>;
  stop(): Promise<void>;
}

/** Ports free on `host` right now; pass them to startCollector to know endpoints before it runs. */
export async function freePorts(host = "127.0.0.1"): Promise<Ports> {
  const [grpc, http] = await freeTcpPorts(2, host);
  return { grpc: grpc!, http: http! };
}

/** Tries with new ports when the picked ones were taken before the collector bound them. */
const portAttempts = 3;

/**
 * `host`: the local address to listen on; `ports`: where (picked free on `host` when not
 * given, and picked again when another socket took one meanwhile).
 */
export async function startCollector(binary: string, ports?: Ports, host = "127.0.0.1"): Promise<Collector> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startCollectorOn(binary, ports ?? (await freePorts(host)), host);
    } catch (error) {
      if (ports !== undefined || attempt === portAttempts || !/address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startCollectorOn(binary: string, { grpc, http }: Ports, host: string): Promise<Collector> {
  const dir = await mkdtemp(join(tmpdir(), "otelcol-"));
  const output = join(dir, "logs.jsonl");
  const config = join(dir, "config.yaml");
  // JSON is YAML: no YAML writer needed. Internal metrics off so no second port is bound.
  await writeFile(
    config,
    JSON.stringify({
      receivers: { otlp: { protocols: { grpc: { endpoint: `${host}:${grpc}` }, http: { endpoint: `${host}:${http}` } } } },
      exporters: { file: { path: output, format: "json", flush_interval: "100ms" }, debug: { verbosity: "basic" } },
      service: {
        telemetry: { metrics: { level: "none" } },
        pipelines: { logs: { receivers: ["otlp"], exporters: ["file", "debug"] } },
      },
    }),
  );

  const child = spawn(binary, ["--config", `file:${config}`], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-20000)));
  try {
    await waitForPorts(child, host, [grpc, http], 30000);
  } catch (error) {
    child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\ncollector stderr:\n${stderr}`, { cause: error });
  }

  const readLogRecords = async () => parseFileExporterOutput(await readFile(output, "utf8").catch(() => ""));
  return {
    ports: { grpc, http },
    exportFile: output,
    endpoint: (protocol) => `http://${host}:${protocol === "grpc" ? grpc : http}`,
    readLogRecords,
    async waitForLogRecords(count, where = () => true, timeoutMillis = 10000) {
      const deadline = Date.now() + timeoutMillis;
      for (;;) {
        const records = (await readLogRecords()).filter(where);
        if (records.length >= count || Date.now() > deadline) return records;
        await sleep(50);
      }
    },
    async stop() {
      await stopProcess(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function waitForPorts(child: ChildProcess, host: string, ports: number[], timeoutMillis: number): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  for (const port of ports) {
    while (!(await acceptsConnections(port, host))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`collector exited (${child.exitCode ?? child.signalCode})`);
      if (Date.now() > deadline) throw new Error(`collector not listening on ${host}:${port} after ${timeoutMillis} ms`);
      await sleep(50);
    }
  }
}

/** One ExportLogsServiceRequest per line; a last line still being written is skipped. */
export function parseFileExporterOutput(text: string): CollectedLogRecord[] {
  return text
    .split("\n")
    .slice(0, -1)
    .flatMap((line) => flattenLogsRequest(JSON.parse(line) as OtlpLogsRequest));
}
