/**
 * Policy controls against the real kernel: blocked executables and reverse shells are
 * killed in enforce mode and only recorded in audit mode, drift is caught, and a policy
 * swapped the way the kubelet swaps a downward-API volume takes effect without a restart.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInPidNamespace, type JsonRecord, type NamespaceRun } from "./pid-namespace.ts";

const violations = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.policy.violation");
const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];

function policyYaml(mode: "audit" | "enforce", controls: string): string {
  return `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: test-${mode}}\nspec:\n  enforcementMode: ${mode}\n  controls:\n${controls}`;
}

/** A policy directory laid out like a kubelet-managed volume: policy.yaml → ..data/policy.yaml. */
function kubeletVolume(yaml: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "microenforcer-volume-"));
  mkdirSync(join(dir, "..v1"));
  writeFileSync(join(dir, "..v1", "policy.yaml"), yaml);
  symlinkSync("..v1", join(dir, "..data"));
  symlinkSync("..data/policy.yaml", join(dir, "policy.yaml"));
  return { dir, file: join(dir, "policy.yaml") };
}

/** Shell that swaps the volume to new content atomically, as the kubelet's AtomicWriter does. */
function swapScript(dir: string, version: string, yaml: string): string {
  return `mkdir ${dir}/..${version} && cat > ${dir}/..${version}/policy.yaml <<'POLICY'
${yaml}
POLICY
ln -s ..${version} ${dir}/..data_tmp && mv -T ${dir}/..data_tmp ${dir}/..data`;
}

const blockedSleep = "    executables: {blocked: ['**/sleep-blocked']}\n";

describe("policy controls in a real PID namespace", function () {
  this.timeout(30_000);

  it("enforce mode kills a blocked executable at once and records the kill", async () => {
    const { file } = kubeletVolume(policyYaml("enforce", blockedSleep));
    const run = await runInPidNamespace(`cp /bin/sleep $WORK/sleep-blocked; $WORK/sleep-blocked 5; echo "status=$?"`, { watchArgs: ["--policy", file] });
    assert.match(run.workloadLog, /status=137/, "the process died of SIGKILL");
    const [v] = violations(run);
    assert.ok(v, "a violation record");
    assert.equal(v.severityText, "ERROR");
    assert.equal(attr(v, "microenforcer.control"), "executables");
    assert.equal(attr(v, "microenforcer.rule"), "**/sleep-blocked");
    assert.equal(attr(v, "microenforcer.action"), "killed");
    assert.equal(attr(v, "microenforcer.policy.name"), "test-enforce");
    assert.match(String(attr(v, "process.executable.path")), /sleep-blocked$/);
    assert.ok(Number(attr(v, "microenforcer.enforcement.latency_ms")) < 1000);
  });

  it("audit mode records the same finding and lets the process run", async () => {
    const { file } = kubeletVolume(policyYaml("audit", blockedSleep));
    const run = await runInPidNamespace(`cp /bin/sleep $WORK/sleep-blocked; $WORK/sleep-blocked 0.2; echo "status=$?"`, { watchArgs: ["--policy", file] });
    assert.match(run.workloadLog, /status=0/);
    const [v] = violations(run);
    assert.equal(v?.severityText, "WARN");
    assert.equal(attr(v!, "microenforcer.action"), "alert");
  });

  /** The classic python reverse shell: connect to a listener on loopback, dup2 the socket over stdio, exec `path` with `argv`. */
  async function reverseShell(path: string, argv: readonly string[]): Promise<NamespaceRun> {
    const { file } = kubeletVolume(policyYaml("enforce", "    reverseShell: {block: true}\n"));
    const listener = `/usr/bin/python3 -c "import socket, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(('127.0.0.1', 0)); l.listen()
open('$WORK/port', 'w').write(str(l.getsockname()[1]))
c, _ = l.accept(); time.sleep(6)" &`;
    const shell = `/usr/bin/python3 -c "import os, socket
s = socket.create_connection(('127.0.0.1', int(open('$WORK/port').read())))
[os.dup2(s.fileno(), fd) for fd in (0, 1, 2)]
os.execv('${path}', ${JSON.stringify(argv).replaceAll('"', "'")})"`;
    return runInPidNamespace(`${listener}\nuntil [ -s $WORK/port ]; do sleep 0.01; done\n${shell}\necho "status=$?"; kill %1`, {
      watchArgs: ["--policy", file],
    });
  }

  const loader = process.arch === "arm64" ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2";
  for (const [how, argv] of [
    ["", ["/bin/sh", "sh", "-c", "sleep 5; echo survived > $WORK/out"]],
    [" run through the dynamic loader", [loader, "ld.so", "/bin/sh", "-c", "sleep 5; echo survived > $WORK/out"]],
  ] as const) {
    it(`kills a reverse shell${how}: a shell whose stdio is a TCP socket to a listener on loopback`, async () => {
      const [path, ...args] = argv;
      const run = await reverseShell(path, args);
      const seen = JSON.stringify(violations(run).map((r) => [r.body, attr(r, "microenforcer.action")]));
      assert.match(run.workloadLog, /status=137/, seen);
      const [v] = violations(run);
      assert.ok(v);
      assert.equal(attr(v, "microenforcer.control"), "reverseShell");
      assert.equal(attr(v, "microenforcer.action"), "killed");
      assert.match(v.body, /stdin, stdout, stderr connected to tcp\/127\.0\.0\.1:\d+/);
    });
  }

  it("catches a shell that redirects its own stdio to a socket after it started", async () => {
    const { file } = kubeletVolume(policyYaml("enforce", "    reverseShell: {block: true}\n"));
    const listener = `/usr/bin/python3 -c "import socket, time
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(); open('$WORK/port', 'w').write(str(l.getsockname()[1]))
c, _ = l.accept(); time.sleep(6)" &`;
    // bash's /dev/tcp: the exec comes first, the redirection later, inside the shell.
    const run = await runInPidNamespace(
      `${listener}\nuntil [ -s $WORK/port ]; do sleep 0.01; done\nsleep 0.1; bash -c 'exec 0<>/dev/tcp/127.0.0.1/'$(cat $WORK/port)' 1>&0 2>&0; while :; do sleep 0.05; done'\necho "status=$?"; kill %1`,
      { watchArgs: ["--policy", file] },
    );
    assert.match(run.workloadLog, /status=137/);
    const v = violations(run).find((r) => attr(r, "process.executable.name") === "bash");
    assert.ok(v, JSON.stringify(violations(run).map((r) => r.body)));
    assert.equal(attr(v, "microenforcer.action"), "killed");
  });

  it("flags drift: a binary copied into the container after it started", async () => {
    const { file } = kubeletVolume(policyYaml("audit", "    drift: {block: true}\n"));
    const run = await runInPidNamespace(`sleep 1.1; cp /bin/sleep $WORK/dropped; $WORK/dropped 0.2; sleep 0.21`, { watchArgs: ["--policy", file] });
    const drift = violations(run).filter((r) => attr(r, "microenforcer.control") === "drift");
    assert.equal(drift.length, 1, JSON.stringify(drift.map((r) => r.body)));
    assert.match(String(attr(drift[0]!, "process.executable.path")), /\/dropped$/);
    assert.match(drift[0]!.body, /created or changed \d+\.\d s after its container started/);
  });

  it("hot-reloads a policy swapped like a kubelet volume, and keeps the old one when the new one is invalid", async () => {
    const { dir, file } = kubeletVolume(policyYaml("audit", blockedSleep));
    const run = await runInPidNamespace(
      `cp /bin/sleep $WORK/sleep-blocked
       $WORK/sleep-blocked 0.1; echo "first=$?"
       ${swapScript(dir, "v2", policyYaml("enforce", blockedSleep))}
       sleep 0.5
       $WORK/sleep-blocked 5; echo "second=$?"
       ${swapScript(dir, "v3", "spec: [not, a, policy]")}
       sleep 0.5
       $WORK/sleep-blocked 5; echo "third=$?"`,
      { watchArgs: ["--policy", file] },
    );
    assert.match(run.workloadLog, /first=0/, "audit: allowed to run");
    assert.match(run.workloadLog, /second=137/, "enforce after the swap: killed");
    assert.match(run.workloadLog, /third=137/, "an invalid update leaves enforce in force");
    const statuses = run.records.filter((r) => r.eventName === "microenforcer.sensor.status").map((r) => `${r.severityText} ${r.body}`);
    assert.ok(statuses.some((s) => /^INFO policy reloaded: test-enforce, enforce mode/.test(s)), statuses.join("\n"));
    assert.ok(statuses.some((s) => /^ERROR new policy rejected, the previous one stays in force/.test(s)), statuses.join("\n"));
    assert.deepEqual(violations(run).map((r) => attr(r, "microenforcer.action")), ["alert", "killed", "killed"]);
  });
});
