/**
 * `microenforcer policy test` on records the sensor itself produced: the real `watch` in a
 * fresh PID (and network) namespace runs a policy in audit mode over a workload that
 * breaks it; its live violation records are the ground truth the replay of its stdout —
 * and of the same records as the real OpenTelemetry Collector's file exporter wrote them —
 * must reproduce.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ReplayResult } from "../../microenforcer/replay/replay.ts";
import { py } from "../fixtures/net/workload.ts";
import { buildCollector, startCollector, type Collector } from "../infra/otelcol/collector.ts";
import { cli, runInPidNamespace, type JsonRecord, type NamespaceRun } from "./pid-namespace.ts";

const pod = { MICROENFORCER_CONTAINER: "app", POD_NAME: "replay-1", POD_NAMESPACE: "ci", POD_UID: "8d3c0f4e-replay" };

const policy = (name: string, mode: "audit" | "enforce", spec: string): string =>
  `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: ${name}}\nspec:\n  enforcementMode: ${mode}\n${spec}`;

const controls = `  controls:
    containerExec: {allowedCommands: [/bin/true]}
    executables: {blocked: ['**/xmrig']}
    filelessExec: {}
    drift: {}
    reverseShell: {}
    network: {blockedOutbound: [{port: 2323}], blockedListenPorts: [2323]}
`;

/** A miner, a deleted and a memfd program, a listener and a connection on a blocked port, and an exec session. */
const workload = `cp /bin/sleep $WORK/xmrig; $WORK/xmrig 0.05
  cp /bin/sleep $WORK/dropper; ( exec 3< $WORK/dropper; rm $WORK/dropper; exec /proc/self/fd/3 0.05 )
  /usr/bin/python3 -c "import os; fd = os.memfd_create('payload'); os.write(fd, open('/bin/sleep', 'rb').read()); os.execv(f'/proc/self/fd/{fd}', ['payload', '0.05'])"
  ${py} listen tcp 127.0.0.1 2323 $WORK/listener & until [ -s $WORK/listener ]; do sleep 0.01; done
  ${py} connect tcp 127.0.0.1 2323 0.3
  touch $WORK/listener.stop; wait
  $SYNC wait`;

const violations = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.policy.violation");

/** Findings per control and rule, as "control rule" → count. */
function tally(pairs: Array<[control: unknown, rule: unknown, count: number]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [control, rule, count] of pairs) out[`${String(control)} ${String(rule)}`] = (out[`${String(control)} ${String(rule)}`] ?? 0) + count;
  return out;
}
const liveTally = (records: JsonRecord[]) => tally(records.map((r) => [r.attributes["microenforcer.control"], r.attributes["microenforcer.rule"], 1]));
const replayTally = (result: ReplayResult) => tally(result.rules.map((r) => [r.control, r.rule, r.findings]));

interface PolicyTest {
  status: number | null;
  stdout: string;
  stderr: string;
}

function policyTest(...args: string[]): PolicyTest {
  const r = spawnSync(process.execPath, [cli, "policy", "test", ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("policy test on records the sensor produced", function () {
  this.timeout(60_000);
  let dir: string;
  let run: NamespaceRun;
  let records: string;

  before(async function () {
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare --pid --net, nsenter)");
    dir = mkdtempSync(join(tmpdir(), "microenforcer-replay-"));
    writeFileSync(join(dir, "audit.yaml"), policy("observed", "audit", controls));
    run = await runInPidNamespace(workload, {
      network: true,
      env: pod,
      watchArgs: ["--policy", join(dir, "audit.yaml")],
      // An exec session (PPID 0, entered from outside) that the candidate policies do not allow.
      whilePaused: async (hostPid) => {
        const r = spawnSync("nsenter", ["-t", String(hostPid), "-p", "-m", "-n", "--", "sh", "-c", "sleep 0.3"], { env: { ...process.env, ...pod } });
        assert.equal(r.status, 0, r.stderr.toString());
      },
    });
    records = join(dir, "records.jsonl");
    writeFileSync(records, `${run.records.map((r) => JSON.stringify(r)).join("\n")}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the live run broke every control of the policy (the ground truth is not empty)", () => {
    assert.deepEqual(
      Object.keys(liveTally(violations(run))).sort(),
      ["containerExec allowedCommands: /bin/true", "drift executable changed after container start", "executables **/xmrig", "filelessExec deleted", "filelessExec memfd", "network blockedListenPorts=2323", "network port=2323"],
      run.stderr,
    );
  });

  it("replays the same policy to the findings the sensor made live, and says what it cannot replay", () => {
    const out = policyTest("--policy", join(dir, "audit.yaml"), "--format", "json", records);
    assert.equal(out.status, 0, out.stderr);
    const result = JSON.parse(out.stdout) as ReplayResult;
    // Drift too: each exec record carries the executable's change time the sensor read at first sight.
    assert.deepEqual(replayTally(result), liveTally(violations(run)));
    assert.deepEqual(result.records.sources, ["ci/replay-1"]);
    assert.deepEqual(result.notReplayed.map((n) => [n.control, n.recordedFindings]), [["reverseShell", 0]]);
  });

  it("says what the policy in enforce mode would kill, with examples, and exits 1", () => {
    writeFileSync(join(dir, "enforce.yaml"), policy("candidate", "enforce", controls));
    const out = policyTest("--policy", join(dir, "enforce.yaml"), records);
    assert.equal(out.status, 1, out.stderr);
    assert.match(out.stdout, /^policy candidate \(enforce mode\) replayed on \d+ records from 1 source \(ci\/replay-1\)/);
    assert.match(out.stdout, /would block:\n[\s\S]*executables {2}\*\*\/xmrig {2}1 finding: 1 would be killed\n +\S+ ci\/replay-1 {2}executables: \S+\/xmrig is a blocked executable \(pid \d+\)\n +\S+\/xmrig 0\.05\n/);
    assert.match(out.stdout, /network {2}port=2323 {2}1 finding: 1 would be killed/);
    assert.match(out.stdout, /containerExec {2}allowedCommands: \/bin\/true {2}1 finding: 1 would be killed[\s\S]*sh -c 'sleep 0\.3'/);
    assert.match(out.stdout, /drift {2}executable changed after container start {2}2 findings: 2 would be killed\n[\s\S]*xmrig was created or changed/);
    assert.match(out.stdout, /not replayed:\n {2}reverseShell: [^\n]*\n\nresult/, "every exec's change time was recorded: no note on drift");
    assert.match(out.stdout, /result: 8 findings would be blocked \(\d processes killed\)\n$/);
  });

  it("passes a policy change that would block nothing the workload did (exit 0), and refuses input without records (exit 2)", () => {
    writeFileSync(join(dir, "harmless.yaml"), policy("harmless", "enforce", "  controls:\n    executables: {blocked: ['**/nc']}\n    containerExec: {allowedCommands: [sh, nsenter]}\n"));
    const ok = policyTest("--policy", join(dir, "harmless.yaml"), records);
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /no findings\n\nresult: nothing would be blocked\n$/);
    writeFileSync(join(dir, "stderr.txt"), "microenforcer: first loss of spool_full records\n");
    const none = policyTest("--policy", join(dir, "harmless.yaml"), join(dir, "stderr.txt"));
    assert.equal(none.status, 2);
    assert.match(none.stdout, /skipped 1 line that hold no record:\n {2}\S+stderr\.txt:1: not JSON/);
  });
});

describe("policy test on the collector's file export of the sensor's records", function () {
  this.timeout(60_000);
  let collector: Collector;
  let dir: string;

  before(async function () {
    this.timeout(30 * 60 * 1000); // a cold build fetches and compiles the collector's modules
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare --pid)");
    collector = await startCollector(await buildCollector());
    dir = mkdtempSync(join(tmpdir(), "microenforcer-replay-otlp-"));
  });
  after(async () => {
    await collector?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads OTLP/JSON lines and finds what the replay of stdout finds", async () => {
    // The host's network namespace (the collector is on its loopback): network sensing off.
    writeFileSync(join(dir, "audit.yaml"), policy("observed", "audit", "  forensics: {networkActivity: false}\n  controls:\n    executables: {blocked: ['**/xmrig']}\n    filelessExec: {}\n"));
    const run = await runInPidNamespace(`cp /bin/sleep $WORK/xmrig; $WORK/xmrig 0.05; $WORK/xmrig 0.05`, {
      env: { ...pod, OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint("http/protobuf"), OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" },
      watchArgs: ["--policy", join(dir, "audit.yaml"), "--exporter", "both"],
    });
    const exported = await collector.waitForLogRecords(run.records.length);
    assert.equal(exported.length, run.records.length, run.stderr);
    const otlp = join(dir, "export.jsonl");
    writeFileSync(otlp, readFileSync(collector.exportFile));
    const stdout = join(dir, "stdout.jsonl");
    writeFileSync(stdout, `${run.records.map((r) => JSON.stringify(r)).join("\n")}\n`);

    const fromOtlp = JSON.parse(policyTest("--policy", join(dir, "audit.yaml"), "--format", "json", otlp).stdout) as ReplayResult;
    const fromStdout = JSON.parse(policyTest("--policy", join(dir, "audit.yaml"), "--format", "json", stdout).stdout) as ReplayResult;
    assert.deepEqual(replayTally(fromOtlp), { "executables **/xmrig": 2 });
    assert.deepEqual(replayTally(fromOtlp), liveTally(violations(run)));
    assert.deepEqual(fromOtlp.rules, fromStdout.rules);
    assert.deepEqual(fromOtlp.records, fromStdout.records);

    // Both given, as one would after collecting from both paths: every record is replayed once.
    const both = JSON.parse(policyTest("--policy", join(dir, "audit.yaml"), "--format", "json", otlp, stdout).stdout) as ReplayResult;
    assert.equal(both.records.duplicates, run.records.length);
    assert.deepEqual(both.rules.map((r) => r.findings), [2]);

    // And from stdin, as in `kubectl logs ... | microenforcer policy test --policy P -`.
    const piped = spawn(process.execPath, [cli, "policy", "test", "--policy", join(dir, "audit.yaml"), "-"], { stdio: ["pipe", "pipe", "inherit"] });
    let text = "";
    piped.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
    piped.stdin.end(readFileSync(otlp));
    const status = await new Promise<number | null>((resolve) => piped.on("exit", resolve));
    assert.equal(status, 0);
    assert.match(text, /executables {2}\*\*\/xmrig {2}2 findings: 2 alert only/);
  });
});
