/**
 * Test helper: a real Kubernetes control plane on loopback — etcd and kube-apiserver built
 * by build.sh, with the envtest set of flags, and with `controllers: true` also
 * kube-controller-manager and kube-scheduler. Without them Pods stay Pending and namespaces
 * stay Terminating after a delete. Nothing needs ServiceAccounts to exist before their
 * Pods: the ServiceAccount admission plugin is off (see below). The admission chain is
 * complete, so MutatingWebhookConfigurations are called for real.
 *
 * Nodes (../node/) join with a client certificate from issueCertificate(): the Node
 * authorizer gives a kubelet what its node needs, and the apiserver calls kubelets (exec,
 * logs) with its own client certificate, checking theirs against `caFile`.
 *
 * Webhooks: the apiserver dials `clientConfig.url` (e.g. https://127.0.0.1:PORT/mutate)
 * directly and trusts exactly the `caBundle` of the webhook configuration, so no apiserver
 * flag is involved. issueCertificate() gives a serving certificate signed by `caFile` for a
 * webhook that does not bring its own.
 *
 * Certificates come from the openssl CLI (node:crypto cannot write X.509 and node-forge is
 * not a dependency here). Everything lives in one temp dir that stop() removes; read the
 * log files before calling stop() if a test failed.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freeTcpPorts, startProcess, stopProcess, waitUntil } from "../processes.ts";

const run = promisify(execFile);
const BUILD_SCRIPT = new URL("./build.sh", import.meta.url).pathname;

/** Builds (or reuses) etcd, kube-apiserver and kubectl; returns their directory. */
export async function buildKube(): Promise<string> {
  const { stdout } = await run(BUILD_SCRIPT, { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split("\n").at(-1) ?? "";
}

/** The Services' ClusterIP range (`--service-cluster-ip-range`); the kubernetes Service takes the first address. */
export const SERVICE_RANGE = "10.0.0.0/24";

export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver and kubectl; default: buildKube(). */
  binDir?: string;
  /** Extra kube-apiserver flags, appended last so they win (e.g. --feature-gates=...). */
  apiserverArgs?: string[];
  /** How long to wait for /readyz; default 60 s (a loaded 2-core machine is slow). */
  timeoutMillis?: number;
  /** Also run kube-controller-manager and kube-scheduler: Deployments, Jobs, `kubectl run`. */
  controllers?: boolean;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Admin (system:masters) kubeconfig with the certificates embedded. */
  kubeconfigPath: string;
  /** The CA that signed the apiserver's serving cert and every issued certificate. */
  caFile: string;
  kubectlPath: string;
  dir: string;
  logs: { etcd: string; apiserver: string; controllerManager?: string; scheduler?: string };
  /** Wall-clock milliseconds of each start-up step. */
  startup: { certificates: number; etcd: number; apiserver: number; controllers?: number };
  /** Runs kubectl against this control plane; never throws on a non-zero exit. */
  kubectl(args: string[], options?: { input?: string; timeoutMillis?: number }): Promise<KubectlResult>;
  /** A certificate signed by `caFile`: serving (default) or client (clientAuth). */
  issueCertificate(
    name: string,
    options?: { dnsNames?: string[]; ipAddresses?: string[]; clientAuth?: boolean; organization?: string },
  ): Promise<IssuedCertificate>;
  stop(): Promise<void>;
}

export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = options.binDir ?? (await buildKube());
  const timeoutMillis = options.timeoutMillis ?? 60000;
  const dir = await mkdtemp(join(tmpdir(), "kube-"));
  const logs: ControlPlane["logs"] = { etcd: join(dir, "etcd.log"), apiserver: join(dir, "kube-apiserver.log") };
  const children: ChildProcess[] = [];
  // A test run that dies without calling stop() must not leave servers behind.
  const killAll = () => children.forEach((child) => child.kill("SIGKILL"));
  process.once("exit", killAll);
  const cleanUp = async () => {
    process.off("exit", killAll);
    for (const child of children.reverse()) await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    let mark = Date.now();
    const certs = new CertificateAuthority(join(dir, "pki"));
    await certs.init();
    const [serving, admin, kubeletClient] = await Promise.all([
      certs.issue("apiserver", { dnsNames: ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"], ipAddresses: ["127.0.0.1"] }),
      certs.issue("admin", { clientAuth: true, organization: "system:masters" }),
      // What the apiserver shows kubelets (exec, logs); kubelets ask the apiserver whether
      // this user may, and system:masters may.
      certs.issue("apiserver-kubelet-client", { clientAuth: true, organization: "system:masters" }),
    ]);
    // The apiserver signs ServiceAccount tokens with the private key and verifies them with
    // the public one (it does not read public keys out of a PKCS#8 private key file).
    const serviceAccountKey = join(certs.dir, "service-account.key");
    const serviceAccountPublicKey = join(certs.dir, "service-account.pub");
    await openssl(certs.dir, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", serviceAccountKey]);
    await openssl(certs.dir, ["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPublicKey]);
    const certificates = Date.now() - mark;

    mark = Date.now();
    const [clientPort, peerPort, securePort] = await freeTcpPorts(3);
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    children.push(
      await startProcess(join(binDir, "etcd"), logs.etcd, [
        "--name=test",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=test=${peerUrl}`,
        // Test data is thrown away: skipping fsync makes every write much faster.
        "--unsafe-no-fsync",
      ]),
    );
    await waitUntil(children[0]!, logs.etcd, timeoutMillis, "etcd /health", async () => {
      const response = await fetch(`${etcdUrl}/health`).catch(() => undefined);
      return response?.ok === true;
    });
    const etcd = Date.now() - mark;

    mark = Date.now();
    const server = `https://127.0.0.1:${securePort}`;
    const ca = await readFile(certs.caFile);
    const tlsClient = { ca, cert: await readFile(admin.certFile), key: await readFile(admin.keyFile) };
    children.push(
      await startProcess(join(binDir, "kube-apiserver"), logs.apiserver, [
        `--etcd-servers=${etcdUrl}`,
        "--bind-address=127.0.0.1",
        // Without it the apiserver looks for a default route, which an offline machine lacks.
        "--advertise-address=127.0.0.1",
        // The endpoint reconciler would publish that address for the `kubernetes` Service,
        // which validation rejects (loopback) every few seconds: nothing needs it here.
        "--endpoint-reconciler-type=none",
        `--secure-port=${securePort}`,
        `--cert-dir=${join(dir, "apiserver")}`,
        `--tls-cert-file=${serving.certFile}`,
        `--tls-private-key-file=${serving.keyFile}`,
        `--client-ca-file=${certs.caFile}`,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${serviceAccountPublicKey}`,
        `--service-account-signing-key-file=${serviceAccountKey}`,
        // ClusterIPs are allocated from it. There is no kube-proxy: nothing answers there
        // but the cluster DNS a node puts on its own address (node/node.ts).
        `--service-cluster-ip-range=${SERVICE_RANGE}`,
        // Node: a kubelet (user system:node:NAME) may read and write what its node runs.
        "--authorization-mode=Node,RBAC",
        `--kubelet-client-certificate=${kubeletClient.certFile}`,
        `--kubelet-client-key=${kubeletClient.keyFile}`,
        `--kubelet-certificate-authority=${certs.caFile}`,
        // Nodes here have no resolvable hostname: call them at the address they register.
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        // This plugin rejects every Pod of a namespace until its default ServiceAccount
        // exists: without a controller manager it never does, and with one a Pod created
        // right after its namespace races it. Pods then run without a token, which nothing
        // here needs. MutatingAdmissionWebhook and the other default plugins stay on.
        "--disable-admission-plugins=ServiceAccount",
        ...(options.apiserverArgs ?? []),
      ]),
    );
    await waitUntil(children[1]!, logs.apiserver, timeoutMillis, "kube-apiserver /readyz", async () => {
      const { status } = await httpsGet(`${server}/readyz`, tlsClient).catch(() => ({ status: 0 }));
      return status === 200;
    });
    const apiserver = Date.now() - mark;

    const kubeconfigPath = join(dir, "kubeconfig");
    await writeFile(kubeconfigPath, kubeconfig(server, ca, tlsClient.cert, tlsClient.key), { mode: 0o600 });
    let controllers: number | undefined;
    if (options.controllers === true) {
      mark = Date.now();
      logs.controllerManager = join(dir, "kube-controller-manager.log");
      logs.scheduler = join(dir, "kube-scheduler.log");
      const [managerPort, schedulerPort] = await freeTcpPorts(2);
      // Both run as admin (the kubeconfig is also what they check callers of /healthz
      // with); one instance each, so no leader election.
      const common = (port: number) => [
        `--kubeconfig=${kubeconfigPath}`,
        `--authentication-kubeconfig=${kubeconfigPath}`,
        `--authorization-kubeconfig=${kubeconfigPath}`,
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        `--secure-port=${port}`,
      ];
      const manager = await startProcess(join(binDir, "kube-controller-manager"), logs.controllerManager, common(managerPort!));
      children.push(manager);
      const scheduler = await startProcess(join(binDir, "kube-scheduler"), logs.scheduler, common(schedulerPort!));
      children.push(scheduler);
      // Self-signed serving certificates: only whether they answer matters here.
      const healthy = (port: number) => async () => (await httpsGet(`https://127.0.0.1:${port}/healthz`, { rejectUnauthorized: false }).catch(() => ({ status: 0 }))).status === 200;
      await Promise.all([
        waitUntil(manager, logs.controllerManager, timeoutMillis, "kube-controller-manager /healthz", healthy(managerPort!)),
        waitUntil(scheduler, logs.scheduler, timeoutMillis, "kube-scheduler /healthz", healthy(schedulerPort!)),
      ]);
      controllers = Date.now() - mark;
    }
    const kubectlPath = join(binDir, "kubectl");
    return {
      server,
      kubeconfigPath,
      caFile: certs.caFile,
      kubectlPath,
      dir,
      logs,
      startup: { certificates, etcd, apiserver, ...(controllers === undefined ? {} : { controllers }) },
      kubectl: (args, kubectlOptions) =>
        // KUBECACHEDIR: keep the discovery cache of every throw-away cluster out of ~/.kube.
        runKubectl(kubectlPath, args, { KUBECONFIG: kubeconfigPath, KUBECACHEDIR: join(dir, "kubectl-cache") }, kubectlOptions),
      issueCertificate: (name, issueOptions) => certs.issue(name, issueOptions),
      stop: cleanUp,
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/** A throw-away CA in `dir`: EC P-256 keys (fast to generate), valid for a week. */
class CertificateAuthority {
  readonly dir: string;
  readonly caFile: string;

  constructor(dir: string) {
    this.dir = dir;
    this.caFile = join(dir, "ca.crt");
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await openssl(this.dir, ["req", "-x509", ...NEW_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=microenforcer-test-ca", "-days", "7"]);
  }

  async issue(
    name: string,
    options: { dnsNames?: string[]; ipAddresses?: string[]; clientAuth?: boolean; organization?: string } = {},
  ): Promise<IssuedCertificate> {
    const names = [...(options.dnsNames ?? []).map((dns) => `DNS:${dns}`), ...(options.ipAddresses ?? []).map((ip) => `IP:${ip}`)];
    // The apiserver maps a client certificate's O to groups and CN to the user name.
    const subject = `${options.organization === undefined ? "" : `/O=${options.organization}`}/CN=${name}`;
    await writeFile(
      join(this.dir, `${name}.ext`),
      [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${options.clientAuth === true ? "clientAuth" : "serverAuth"}`,
        ...(names.length > 0 ? [`subjectAltName=${names.join(",")}`] : []),
      ].join("\n") + "\n",
    );
    await openssl(this.dir, ["req", "-new", ...NEW_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject]);
    // No -CAserial: openssl 3 then picks a random serial, so issuing in parallel is safe.
    await openssl(this.dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-days", "7", "-extfile", `${name}.ext`, "-out", `${name}.crt`]);
    return { certFile: join(this.dir, `${name}.crt`), keyFile: join(this.dir, `${name}.key`) };
  }
}

const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function openssl(cwd: string, args: string[]): Promise<void> {
  await run("openssl", args, { cwd });
}

/** A kubeconfig for one client certificate (the admin's, a kubelet's). */
export function kubeconfig(server: string, ca: Buffer, cert: Buffer, key: Buffer): string {
  // JSON is YAML, and kubectl reads either.
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "certificate-authority-data": ca.toString("base64") } }],
    users: [{ name: "admin", user: { "client-certificate-data": cert.toString("base64"), "client-key-data": key.toString("base64") } }],
    contexts: [{ name: "test", context: { cluster: "test", user: "admin" } }],
    "current-context": "test",
  });
}

function httpsGet(url: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 5000 }, (response) => {
      let body = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

async function runKubectl(
  kubectlPath: string,
  args: string[],
  env: Record<string, string>,
  options: { input?: string; timeoutMillis?: number } = {},
): Promise<KubectlResult> {
  const child = spawn(kubectlPath, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  child.stdin.end(options.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMillis ?? 60000);
  const [code] = (await once(child, "close")) as [number | null];
  clearTimeout(timer);
  return { stdout, stderr, code };
}

