/**
 * Test helper: the podman CLI with this machine's settings (containers.conf beside this
 * file: runc, no rlimits) and the e2e images build.sh makes.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { promisify } from "node:util";

const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;
const CONTAINERS_CONF = new URL("./containers.conf", import.meta.url).pathname;
const ARCHIVES_LOCK = new URL("../build/podman-images.lock", import.meta.url).pathname;

export interface Images {
  /** The project's Dockerfile built on the locally made Node 24 base: injector and sidecar. */
  microenforcer: string;
  /** busybox, https-server and the /opt/miner/xmrig stand-in. */
  app: string;
  /** The seed's `kubectl run test-nginx --image=...`: a root web server, Debian's curl, the test CA trusted. */
  nginx: string;
  /** A test node's pod sandbox (catatonit). */
  pause: string;
  /** The images as docker-archive files, for a node's containerd to import. */
  archives: string[];
  /** The test CA the nginx image trusts, and a certificate it signed for www.google.com (PEM files). */
  testCa: { caCert: string; serverCert: string; serverKey: string };
  /** build.sh holds this file locked while it replaces archives: read them under a shared lock. */
  archivesLock: string;
}

/** Builds (or reuses) the images; the first build takes about a minute, later calls a second. */
export async function buildImages(): Promise<Images> {
  const { stdout } = await promisify(execFile)(BUILD_SCRIPT, { maxBuffer: 16 * 1024 * 1024 });
  const lines = new Map(stdout.trim().split("\n").map((line) => [line.split(" ")[0], line.split(" ").slice(1)] as const));
  const [microenforcer, app, nginx, pause] = ["microenforcer", "app", "nginx", "pause"].map((role) => lines.get(role));
  const testCa = lines.get("test-ca")?.[0];
  if (microenforcer?.length !== 2 || app?.length !== 2 || nginx?.length !== 2 || pause?.length !== 2 || testCa === undefined) {
    throw new Error(`build.sh printed no \`ROLE IMAGE ARCHIVE\` lines:\n${stdout}`);
  }
  return {
    microenforcer: microenforcer[0]!,
    app: app[0]!,
    nginx: nginx[0]!,
    pause: pause[0]!,
    archives: [microenforcer[1]!, app[1]!, nginx[1]!, pause[1]!],
    archivesLock: ARCHIVES_LOCK,
    testCa: { caCert: `${testCa}/ca.crt`, serverCert: `${testCa}/www.google.com.crt`, serverKey: `${testCa}/www.google.com.key` },
  };
}

export interface PodmanResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** Runs podman; never throws on a non-zero exit (see podmanOk). */
export async function podman(args: string[], options: { timeoutMillis?: number } = {}): Promise<PodmanResult> {
  const child = spawn("podman", args, { env: { ...process.env, CONTAINERS_CONF }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMillis ?? 120_000);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(timer);
  return { stdout, stderr, code };
}

/** Runs podman and returns its stdout; a non-zero exit throws with its stderr. */
export async function podmanOk(args: string[]): Promise<string> {
  const result = await podman(args);
  if (result.code !== 0) throw new Error(`podman ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A container's stdout and stderr so far (`podman logs` replays each on its own stream). */
export async function containerLogs(container: string): Promise<string> {
  const result = await podman(["logs", container]);
  if (result.code !== 0) throw new Error(`podman logs ${container} exited ${result.code}: ${result.stderr}`);
  return result.stdout + result.stderr;
}
