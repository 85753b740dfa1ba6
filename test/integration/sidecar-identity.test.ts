/**
 * The sidecar's identity against the real kernel: `kubectl run --image=nginx` as the seed has
 * it — a root app with the runtime's default capabilities — beside the sensor running exactly
 * as the injector renders it (its securityContext reproduced with setpriv, as containerd
 * applies it), in fresh PID and network namespaces. And the same app beside the sidecar the
 * injector rendered before (root, every capability dropped), which the kernel refuses.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicies } from "../../policies/load.ts";
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { arrayAt, objectAt, stringAt, type JsonObject } from "../../webhook/json.ts";
import { render } from "../../webhook/render.ts";
import { RUNTIME_DEFAULT_CAPABILITIES } from "../../webhook/security.ts";
import { byEvent, workloadPy } from "../fixtures/net/workload.ts";
import { execs, inContainer, runInPidNamespace, until, type JsonRecord, type NamespaceRun } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const python = realpathSync("/usr/bin/python3");

/** `kubectl run web --image=nginx`: no securityContext anywhere. */
const seedPod: JsonObject = { apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "shop" }, spec: { containers: [{ name: "web", image: "nginx:1.27" }] } };

function renderedSidecarContext(): JsonObject {
  const [policy] = parsePolicies("apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec: {}\n", "p.yaml");
  const { pod } = render({ pod: seedPod, config: defaultInjectorConfig(), policy: policy!, podSecurityLevel: "privileged", native: true, namespace: "shop", clusterDns: undefined });
  return objectAt(arrayAt(objectAt(pod, "spec"), "initContainers").find((c) => stringAt(c, "name") === "microenforcer"), "securityContext")!;
}

/** A container's capabilities as containerd applies them: the runtime default less `drop`, plus `add`. */
function capabilitiesOf(context: JsonObject): string[] {
  const caps = objectAt(context, "capabilities");
  const drop = arrayAt(caps, "drop") as string[];
  const base = drop.includes("ALL") ? [] : RUNTIME_DEFAULT_CAPABILITIES.filter((c) => !drop.includes(c));
  return [...base, ...(arrayAt(caps, "add") as string[])];
}

/** setpriv arguments that give a process a securityContext's user, group, capabilities and no_new_privs. */
function setprivFor(context: JsonObject): string[] {
  const bounding = ["-all", ...capabilitiesOf(context).map((c) => `+${c.toLowerCase()}`)].join(",");
  const args = ["setpriv", `--bounding-set=${bounding}`, "--inh-caps=-all"];
  if (typeof context.runAsUser === "number") args.push(`--reuid=${context.runAsUser}`, `--regid=${String(context.runAsGroup ?? context.runAsUser)}`, "--clear-groups");
  if (context.allowPrivilegeEscalation === false) args.push("--no-new-privs");
  return args;
}

/** A root container without securityContext. */
const rootApp = setprivFor({});

describe("the sidecar's identity against the real kernel", function () {
  this.timeout(60_000);
  let scratch: string;

  before(function () {
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare, nsenter, setpriv)");
    scratch = mkdtempSync(join(tmpdir(), "microenforcer-identity-"));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  /** The seed's app: a root listener (the container's init), an exec session connecting to it, a worker that drops root. */
  async function seed(sidecar: JsonObject, tag: string): Promise<{ run: NamespaceRun; listener: number; client: number }> {
    const ready = join(scratch, `web-${tag}`);
    let clientLog = "";
    const run = await runInPidNamespace("$SYNC wait", {
      network: true,
      sensorPrefix: setprivFor(sidecar),
      whilePaused: async (hostPid) => {
        const server = inContainer(hostPid, "web", [...rootApp, "/usr/bin/python3", workloadPy, "listen", "tcp", "127.0.0.1", "8080", ready]);
        await until(() => existsSync(ready), 10_000, "listener up");
        // An nginx worker: started as root, then setgid/setuid to another user without exec,
        // holding a connection (whose owner the sensor then looks for).
        const drop = "$( = 101; $) = '101 101'; $< = $> = 101; my $s = IO::Socket::INET->new('127.0.0.1:8080') or die; sleep 1";
        const worker = inContainer(hostPid, "web", [...rootApp, "perl", "-MIO::Socket::INET", "-e", drop]);
        clientLog = await inContainer(hostPid, "web", [...rootApp, "/usr/bin/python3", workloadPy, "connect", "tcp", "127.0.0.1", "8080", "0.3"]).output;
        writeFileSync(`${ready}.stop`, "");
        await Promise.all([server.output, worker.output]);
      },
    });
    assert.equal(run.exitCode, 0, run.stderr);
    const client = (JSON.parse(clientLog.trim().split("\n")[0]!) as { pid: number }).pid;
    const listener = execs(run).find((r) => (attr(r, "process.command_args") as string[] | undefined)?.includes("listen"));
    assert.ok(listener, run.records.map((r) => r.body).join("\n"));
    return { run, listener: Number(attr(listener, "process.pid")), client };
  }

  const statuses = (run: NamespaceRun) => run.records.filter((r) => r.eventName === "microenforcer.sensor.status" && attr(r, "microenforcer.status.cause") !== undefined);
  const causes = (run: NamespaceRun) => statuses(run).map((r) => String(attr(r, "microenforcer.status.cause")));

  it("renders a root sidecar with the runtime's default capabilities for a root app with no securityContext", () => {
    const context = renderedSidecarContext();
    assert.deepEqual([context.runAsUser, context.runAsGroup, context.capabilities], [0, 0, undefined]);
  });

  it("as rendered, reads the root app in full: executable, container, sockets; names the true cause for what it cannot read", async () => {
    const { run, listener, client } = await seed(renderedSidecarContext(), "rendered");
    const exec = execs(run).find((r) => attr(r, "process.pid") === listener)!;
    assert.equal(attr(exec, "process.executable.path"), python);
    assert.equal(attr(exec, "k8s.container.name"), "web", "from its environ");
    const listen = byEvent(run, "listen").find((r) => attr(r, "network.local.port") === 8080);
    assert.deepEqual([attr(listen!, "microenforcer.network.attribution"), attr(listen!, "process.pid")], ["process", listener]);
    const session = execs(run).find((r) => attr(r, "process.pid") === client)!;
    assert.deepEqual([attr(session, "microenforcer.exec.origin"), attr(session, "process.executable.path")], ["exec-session", python]);
    const outbound = byEvent(run, "connection").find((r) => attr(r, "network.peer.port") === 8080 && attr(r, "process.pid") === client);
    assert.ok(outbound, byEvent(run, "connection").map((r) => r.body).join("\n"));
    // What stays unreadable: the worker that dropped root (only CAP_SYS_PTRACE reads it), and
    // the namespace's own PID 1, a shell with every capability (a container the sidecar may not match).
    assert.ok(!causes(run).some((c) => c.startsWith("exe:EACCES:0:uid")), causes(run).join(" "));
    // Its exe may have been read before it dropped root; its sockets never are.
    const worker = statuses(run).find((r) => /^(exe|fd):EACCES:101:not-dumpable$/.test(String(attr(r, "microenforcer.status.cause"))));
    assert.ok(worker, causes(run).join(" "));
    assert.match(worker.body, /changed their user or group ids after starting/);
    const init = statuses(run).find((r) => attr(r, "microenforcer.status.cause") === "exe:EACCES:0:capabilities");
    assert.ok(init, causes(run).join(" "));
    const missing = attr(init, "microenforcer.access.missing_capabilities") as string[];
    assert.ok(missing.includes("SYS_ADMIN") && !missing.includes("NET_RAW"), `the sidecar holds the default set, not more: ${missing.join(" ")}`);
  });

  it("as rendered before (root, every capability dropped), is refused the root app: the capabilities it lacks, not its UID", async () => {
    const { run, listener } = await seed({ runAsUser: 0, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } }, "no-caps");
    const exec = execs(run).find((r) => attr(r, "process.pid") === listener)!;
    assert.equal(attr(exec, "process.executable.path"), undefined);
    const refused = statuses(run).find((r) => attr(r, "microenforcer.status.cause") === "exe:EACCES:0:capabilities");
    assert.ok(refused, causes(run).join(" "));
    const missing = attr(refused, "microenforcer.access.missing_capabilities") as string[];
    for (const name of RUNTIME_DEFAULT_CAPABILITIES) assert.ok(missing.includes(name), `${name} in ${missing.join(" ")}`);
    assert.doesNotMatch(refused.body, /app's UID/);
  });
});
