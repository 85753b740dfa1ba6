/**
 * Complete mode with the real CLI, the real preload library and real programs in fresh PID
 * namespaces: every exec of a dynamically linked program recorded once (sub-ms ones and an
 * intruder's discovery burst included), the programs that escape the library recorded as
 * absent with the reason, forged reports dropped, and enforce mode stopping a program
 * before main — or letting it run when the sidecar is gone.
 */
import assert from "node:assert/strict";
import { chmodSync, copyFileSync, linkSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeReport } from "../../microenforcer/capture/exec-report.ts";
import { buildPreloadPrograms, loaderOf, type PreloadPrograms } from "../infra/preload-programs.ts";
import { cli, execs, runInPidNamespace, shellQuote, type JsonRecord, type NamespaceRun, type RunOptions } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];
const args = (r: JsonRecord): string => ((attr(r, "process.command_args") as string[] | undefined) ?? []).join(" ");
const violations = (run: NamespaceRun): JsonRecord[] => run.records.filter((r) => r.eventName === "microenforcer.policy.violation");

describe("complete mode: the preload library and the sensor in a real PID namespace", function () {
  this.timeout(60_000);
  let dir: string;
  let programs: PreloadPrograms;

  before(function () {
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare --pid)");
    dir = mkdtempSync(join(tmpdir(), "complete-mode-"));
    chmodSync(dir, 0o755);
    programs = buildPreloadPrograms(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * A workload run with the library installed the way the injector's init container does it,
   * the sensor listening on its socket and the workload's environment set as the injector sets it.
   */
  async function run(workload: string, spec = "", options: RunOptions = {}, container?: string): Promise<NamespaceRun> {
    const lib = mkdtempSync(join(dir, "lib-"));
    chmodSync(lib, 0o755);
    const policy = join(lib, "policy.yaml");
    writeFileSync(
      policy,
      `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: complete}\nspec:\n  forensics: {networkActivity: false}\n${spec}`,
    );
    const install = spawnSync(process.execPath, [cli, "preload", "install", "--dir", lib, "--policy", policy], { encoding: "utf8" });
    assert.equal(install.status, 0, install.stderr);
    const socket = join(lib, "exec.sock");
    // A container name for the whole namespace, as the injector gives every app container:
    // its programs are then ones the library was promised to (see the absent cases).
    return runInPidNamespace(`export LD_PRELOAD=${lib}/libmicroenforcer-exec.so MICROENFORCER_EXEC_SOCKET=${socket}\n${workload}`, {
      ...options,
      ...(container !== undefined && { env: { ...options.env, MICROENFORCER_CONTAINER: container } }),
      watchArgs: ["--policy", policy, "--exec-socket", socket, ...(options.watchArgs ?? [])],
    });
  }

  const burst = ["id", "whoami", "uname -a", "hostname", "cat /etc/passwd", "ls -la /", "env", "ps"];

  it("records an intruder's discovery burst in full, each command once, from the library's reports", async () => {
    const result = await run(`for round in 1 2 3; do sh -c '${burst.join("; ")}' > /dev/null 2>&1; done`);
    for (const command of burst) {
      const records = execs(result).filter((r) => args(r) === command);
      assert.equal(records.length, 3, `${command}: ${records.length} records`);
      for (const r of records) {
        assert.equal(attr(r, "microenforcer.sensor.detection"), "preload", command);
        assert.match(String(attr(r, "microenforcer.process.preload")), /^(reported|unverified)$/);
      }
    }
    const pids = execs(result).map((r) => `${attr(r, "process.pid")} ${args(r)}`);
    assert.equal(new Set(pids).size, pids.length, "no exec recorded twice");
  });

  it("records every sub-millisecond program, with the executable's identity and cwd the process reported", async () => {
    const result = await run(`cd /tmp; for i in $(seq 1 60); do /bin/true short-$i; done`);
    for (let i = 1; i <= 60; i++) {
      const records = execs(result).filter((r) => args(r) === `/bin/true short-${i}`);
      assert.equal(records.length, 1, `short-${i}`);
      assert.equal(attr(records[0]!, "process.working_directory"), "/tmp");
      assert.match(String(attr(records[0]!, "microenforcer.process.executable.inode")), /^\d+$/);
      assert.match(String(attr(records[0]!, "microenforcer.process.executable.changed")), /^\d{4}-/);
    }
    const gaps = result.records.filter((r) => r.eventName === "microenforcer.sensor.gap" && attr(r, "microenforcer.gap.kind") === "pid");
    const missed = gaps.reduce((n, g) => n + Number(attr(g, "microenforcer.gap.count")), 0);
    assert.ok(missed <= 5, `${missed} PIDs in gap records although the library reported every program`);
  });

  it("records glibc and musl programs, and one with its own LD_PRELOAD beside the library", async () => {
    const result = await run(
      `${programs.glibc} $WORK/m1; ${programs.musl} $WORK/m2
       LD_PRELOAD="${programs.otherPreload}:$LD_PRELOAD" OTHER_PRELOAD_MARK=$WORK/other ${programs.glibc} $WORK/m3 own-preload
       cat $WORK/other`,
    );
    for (const [program, marker] of [[programs.glibc, "m1"], [programs.musl, "m2"], [programs.glibc, "m3 own-preload"]] as const) {
      const records = execs(result).filter((r) => args(r).startsWith(program) && args(r).endsWith(marker));
      assert.equal(records.length, 1, `${program} ${marker}`);
      assert.equal(attr(records[0]!, "microenforcer.sensor.detection"), "preload");
    }
    assert.match(result.workloadLog, /^other$/m, "the program's own library ran too");
  });

  it("records a static binary as absent (static), and `env -u LD_PRELOAD` as absent and flagged", async () => {
    const result = await run(`${programs.static} $WORK/s 150; env -u LD_PRELOAD sleep 0.15`, "", {}, "app");
    const stat = execs(result).find((r) => args(r).startsWith(programs.static));
    assert.ok(stat, "the static program is recorded by the poller");
    assert.equal(attr(stat, "microenforcer.process.preload"), "absent");
    assert.equal(attr(stat, "microenforcer.process.preload.reason"), "static");
    assert.equal(attr(stat, "microenforcer.process.preload.evasion"), undefined, "a static binary is no evasion");
    assert.equal(stat.severityText, "INFO");
    const sleep = execs(result).find((r) => args(r) === "sleep 0.15");
    assert.ok(sleep);
    assert.equal(attr(sleep, "microenforcer.process.preload"), "absent");
    assert.equal(attr(sleep, "microenforcer.process.preload.reason"), "environment-without-preload");
    assert.equal(attr(sleep, "microenforcer.process.preload.evasion"), true);
    assert.equal(sleep.severityText, "WARN");
    const env = execs(result).find((r) => args(r) === "env -u LD_PRELOAD sleep 0.15");
    if (env !== undefined) assert.notEqual(attr(env, "microenforcer.process.preload"), "absent", "env itself ran with the library");
  });

  it("drops a forged report and says so, and records nothing for it", async () => {
    // Claims to be the namespace's PID 1 started later than it did, running a harmless name.
    const forged = join(dir, "forged.bin");
    writeFileSync(
      forged,
      encodeReport({
        wait: false, standing: false, loader: false, pid: 1, ppid: 0, startTicks: 1e9, comm: "innocent", uid: { real: 0, effective: 0, saved: 0 }, gid: { real: 0, effective: 0, saved: 0 },
        exeLink: "/usr/bin/innocent", rawArgs: Buffer.from("innocent\0"), truncated: { exe: false, cmdline: false },
      }),
    );
    const result = await run(
      `python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(open(sys.argv[2],"rb").read()); s.close()' "$MICROENFORCER_EXEC_SOCKET" ${forged}; sleep 0.1`,
    );
    const statuses = result.records.filter((r) => r.eventName === "microenforcer.sensor.status" && attr(r, "microenforcer.preload.problem") === "forged");
    assert.equal(statuses.length, 1, result.records.map((r) => r.body).join("\n"));
    assert.match(statuses[0]!.body, /forged exec report dropped: pid 1 /);
    assert.deepEqual(execs(result).filter((r) => args(r).includes("innocent")), []);
  });

  it("drops reports in the name of processes that never were (no PID handed out then), and takes a gone process's only with its real PID and start", async () => {
    const forge = fileURLToPath(new URL("../infra/forge-gone-reports.ts", import.meta.url));
    // A real program, gone by the time of the reports; its start read while it ran. Then
    // claims: two PIDs the namespace has not handed out, the program's PID with a start before
    // the sensor's (nothing by that PID ran then), and the program's PID and start (it ran).
    const result = await run(
      `sleep 0.2 & p=$!; pst=$(cut -d' ' -f22 /proc/$p/stat); wait $p
      own=$(cut -d' ' -f22 /proc/self/stat); last=$(cat /proc/sys/kernel/ns_last_pid)
      ${shellQuote(process.execPath)} ${shellQuote(forge)} "$MICROENFORCER_EXEC_SOCKET" $((last + 5000)):$own $((last + 5001)):$own $p:$((pst - 1000)) $p:$pst
      echo "real $p:$pst"; sleep 0.1`,
    );
    const real = /real (\d+:\d+)/.exec(result.workloadLog)?.[1];
    assert.ok(real !== undefined, result.workloadLog);
    const forged = result.records.filter((r) => attr(r, "microenforcer.preload.problem") === "forged");
    assert.equal(
      forged.reduce((n, r) => n + Number(attr(r, "microenforcer.preload.dropped")), 0),
      3,
      forged.map((r) => r.body).join("\n"),
    );
    assert.match(forged[0]!.body, /did not hand pid \d+ out around the claimed start/);
    const innocent = execs(result).filter((r) => args(r).startsWith("innocent"));
    assert.deepEqual(innocent.map(args), [`innocent ${real}`], "only the claim a real process could make");
    assert.equal(attr(innocent[0]!, "microenforcer.process.preload"), "unverified");
  });

  it("enforce: a report in another live process's name is held against what that process runs: it is neither denied nor killed for a program it does not run", async () => {
    const forge = fileURLToPath(new URL("../infra/forge-report.ts", import.meta.url));
    const send = (how: string): string => `${shellQuote(process.execPath)} ${shellQuote(forge)} $VICTIM "$MICROENFORCER_EXEC_SOCKET" ${how} /tmp/evil`;
    const result = await run(
      `sleep 30 & VICTIM=$!; sleep 0.3
       ${send("wait")}; ${send("nowait")}; sleep 0.3
       kill -0 $VICTIM && echo victim-alive; kill $VICTIM`,
      `  enforcementMode: enforce
  controls:
    executables: {blocked: ["/tmp/evil"]}
`,
      {},
      "app",
    );
    assert.match(result.workloadLog, /^victim-alive$/m, result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /verdict D/, "no deny for the forger to hang up on");
    const forged = result.records.filter((r) => attr(r, "microenforcer.preload.problem") === "forged");
    assert.equal(forged.length, 1, result.records.map((r) => r.body).join("\n"));
    assert.match(forged[0]!.body, /waits for a verdict, yet runs \/usr\/bin\/sleep, not \/tmp\/evil/);
    // The report that did not wait may be true (the victim could have exec'd since): recorded as unverified, it alerts.
    const evil = violations(result).filter((r) => attr(r, "microenforcer.rule") === "/tmp/evil");
    assert.deepEqual(evil.map((r) => attr(r, "microenforcer.action")), ["alert"]);
    const claimed = execs(result).filter((r) => attr(r, "process.executable.path") === "/tmp/evil");
    assert.deepEqual(claimed.map((r) => attr(r, "microenforcer.process.preload")), ["unverified"]);
  });

  /** Runs test/infra/launder-report.py with LAUNDER_PPID from `ppid` (shell text); its template is a true report of that very command. */
  async function launder(ppid: string, before = ""): Promise<NamespaceRun> {
    const script = fileURLToPath(new URL("../infra/launder-report.py", import.meta.url));
    const template = join(dir, "launder.bin");
    const root = { real: 0, effective: 0, saved: 0 };
    writeFileSync(
      template,
      encodeReport({
        wait: false, standing: false, loader: false, pid: 0, ppid: 0, startTicks: 0, comm: "python3", uid: root, gid: root,
        exeLink: realpathSync("/usr/bin/python3"), rawArgs: Buffer.from(`/usr/bin/python3\0${script}\0${template}\0`), truncated: { exe: false, cmdline: false },
      }),
    );
    const result = await run(`${before}LAUNDER_PPID=${ppid} /usr/bin/python3 ${script} ${template}; ls $WORK`, "", {}, "app");
    assert.match(result.workloadLog, /laundered-ran/, result.workloadLog);
    return result;
  }

  it("a process's report about itself cannot choose its parent: one naming the sensor as parent does not hide its subtree", async () => {
    // The sensor ignores its own process tree. A fork that reported itself as the sensor's
    // child, true in all else, was taken for one, and so was everything it started.
    const result = await launder("$SENSOR", 'echo "sensor=$SENSOR"; ');
    const touched = execs(result).filter((r) => args(r).includes("laundered-ran"));
    assert.deepEqual(touched.map((r) => attr(r, "process.executable.name")), ["dash", "touch"], execs(result).map(args).join("\n"));
    const sensor = Number(/^sensor=(\d+)$/m.exec(result.workloadLog)![1]);
    assert.deepEqual(execs(result).filter((r) => attr(r, "process.parent_pid") === sensor), [], "no process is the sensor's child");
  });

  it("nor name a dead process as its parent while its own lives (out of the exec session it descends from, say)", async () => {
    const result = await launder("$dead", 'true & dead=$!; wait; echo "dead=$dead"; ');
    const dead = Number(/^dead=(\d+)$/m.exec(result.workloadLog)![1]);
    const pythons = execs(result).filter((r) => attr(r, "process.executable.name")?.toString().startsWith("python3"));
    assert.deepEqual(execs(result).filter((r) => attr(r, "process.parent_pid") === dead).map(args), [], "no process is the dead one's child");
    const [parent, fork] = [pythons.find((r) => pythons.some((o) => attr(o, "process.parent_pid") === attr(r, "process.pid"))), pythons.find((r) => pythons.some((o) => attr(r, "process.parent_pid") === attr(o, "process.pid")))];
    assert.ok(parent !== undefined && fork !== undefined, `the fork's record names the python that forked it:\n${pythons.map((r) => JSON.stringify(r.attributes)).join("\n")}`);
  });

  it("enforce: blocks a program before main — its marker never appears — and records the block", async () => {
    const result = await run(
      `for i in 1 2 3; do ${programs.glibc} $WORK/blocked-$i; echo "rc=$?"; done; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-glibc"]}\n`,
    );
    assert.equal(result.workloadLog.match(/rc=126/g)?.length, 3, result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /blocked-\d/, "main never ran");
    assert.match(result.workloadLog, /blocked before it ran: executables: .*marker-glibc is a blocked executable/);
    const blocked = violations(result).filter((r) => attr(r, "microenforcer.action") === "blocked");
    assert.equal(blocked.length, 3, violations(result).map((r) => r.body).join("\n"));
    assert.ok(blocked.every((r) => r.severityText === "ERROR"));
  });

  it("enforce: a verdict the sidecar decides after the library's wait is over is no block: the program that went on is killed, and the record says why", async () => {
    // Stopped (or too busy) past the library's 250 ms wait, the sidecar took the report late:
    // the program had taken the failure choice (allow) and run main, yet the sidecar answered
    // the connection the library had given up with a deny, and recorded a block (the kill
    // once the library hung up came later, after main had run).
    const result = await run(
      `(kill -STOP $SENSOR; sleep 0.6; kill -CONT $SENSOR) & sleep 0.1
       ${programs.glibc} $WORK/late-ran 1500; echo "rc=$?"; wait; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-glibc"]}\n`,
    );
    assert.match(result.workloadLog, /late-ran/, "no verdict in time: the failure choice (allow), and main ran");
    assert.match(result.workloadLog, /^rc=137$/m, "then killed, as the poller alone would have it");
    const actions = violations(result).filter((r) => String(r.body).includes("marker-glibc")).map((r) => attr(r, "microenforcer.action"));
    assert.deepEqual(actions, ["killed"], "what happened to it, not a block that did not happen");
    const exec = execs(result).find((r) => String(attr(r, "process.executable.path")).endsWith("marker-glibc"));
    assert.ok(exec !== undefined, execs(result).map(args).join("\n"));
    assert.equal(attr(exec, "microenforcer.process.preload.verdict"), "late");
    assert.equal(exec.severityText, "WARN");
    assert.match(String(exec.body), /after its wait for a verdict was over.* the policy's failure choice/);
  });

  it("enforce: a process flooding the report socket with connections that send nothing cannot make a verdict fail open", async () => {
    // The socket refused connections past 1 024 open: the library's too, and a waiting program
    // took the failure choice (allow) and ran main. Silent connections now make room for reports.
    const flood = fileURLToPath(new URL("../infra/flood-report-socket.py", import.meta.url));
    const result = await run(
      `/usr/bin/python3 ${flood} 1100 4 & sleep 1.5
       for i in 1 2 3; do ${programs.glibc} $WORK/blocked-$i; echo "rc=$?"; done; wait; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-glibc"]}\n`,
    );
    assert.match(result.workloadLog, /flooding \d+/, result.workloadLog);
    assert.equal(result.workloadLog.match(/^rc=126$/gm)?.length, 3, result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /blocked-\d/, "main never ran");
    const silent = result.records.filter((r) => attr(r, "microenforcer.preload.problem") === "silent");
    assert.ok(silent.length > 0, "a status record says the socket was held busy");
    assert.match(String(silent[0]!.body), /connections to the report socket open without a report: the oldest, silent \d+ ms, closed to let reports in/);
  });

  it("enforce: a process past the report rate limit cannot slip a blocked program through: the limit denies it before main", async () => {
    // 40 execs in place (each reports) take the process past 32 reports in 10 s; its 42nd
    // exec is the blocked program. Dropping that report would leave the library to its
    // failure choice (allow), and main would run.
    const result = await run(
      `printf '%s\\n' 'if [ "$1" -lt 40 ]; then exec /bin/sh "$0" $(($1 + 1)); fi' 'exec ${programs.glibc} $WORK/reached-main' > $WORK/chain.sh
       sh $WORK/chain.sh 0; echo "rc=$?"; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-glibc"]}\n`,
    );
    assert.match(result.workloadLog, /^rc=126$/m, result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /reached-main/, "main never ran");
    assert.match(result.workloadLog, /more than 32 exec reports of pid \d+ in 10 s/);
    const limited = result.records.filter((r) => attr(r, "microenforcer.preload.problem") === "rate-limited");
    assert.ok(limited.length >= 1, result.records.map((r) => r.body).join("\n"));
    assert.match(limited[0]!.body, /more than 32 exec reports of pid \d+ in 10 s: those beyond dropped, a program waiting for its verdict denied/);
  });

  it("enforce: a library that read another mode goes on unasked: recorded so, and preloadEvasion kills it", async () => {
    // The sidecar's `mode` rewritten to audit (as an app reaching it through /proc/PID/root
    // would); and a socket path of the process's own choosing, in a directory with a link to
    // the sidecar's socket and a `mode` of its own, which any process may do. Reports come, but never wait.
    const result = await run(
      `mkdir $WORK/own && echo 'audit allow 250' > $WORK/own/mode && ln -s "$MICROENFORCER_EXEC_SOCKET" $WORK/own/exec.sock
       echo 'audit allow 250' > "$(dirname "$MICROENFORCER_EXEC_SOCKET")/mode"
       ${programs.glibc} $WORK/ran 3000; echo "rc=$?"
       MICROENFORCER_EXEC_SOCKET=$WORK/own/exec.sock ${programs.glibc} $WORK/ran 3000; echo "rc=$?"
       ${programs.glibc} $WORK/after; echo "after: rc=$?"`,
      `  enforcementMode: enforce
  controls:
    preloadEvasion: {block: true}
`,
      {},
      "app",
    );
    assert.equal(result.workloadLog.match(/^rc=137$/gm)?.length, 2, result.workloadLog);
    const marker = execs(result).filter((r) => attr(r, "process.executable.path") === programs.glibc);
    const how = marker.map((r) => `${attr(r, "microenforcer.process.preload")} ${attr(r, "microenforcer.process.preload.verdict") ?? attr(r, "microenforcer.process.preload.reason")} ${r.severityText}`);
    assert.equal(how.length, 3, how.join("\n"));
    // The sidecar found its mode file changed, said so, and wrote it again: the next program asks.
    const changed = result.records.filter((r) => attr(r, "microenforcer.status.cause") === "preload-mode-changed");
    assert.deepEqual(changed.map((r) => r.body.replace(/ beside \S+/, "")), [
      `the preload library's mode said "audit allow 250", not what the sidecar wrote: written again; programs that read it went on without asking`,
    ]);
    assert.match(result.workloadLog, /^after: rc=0$/m);
    assert.equal(how[2], "reported asked INFO");
    how.pop();
    assert.equal(how[0], "reported unasked WARN");
    assert.match(marker[0]!.body, /without waiting for a verdict in enforce mode: its preload library read another mode/);
    // Whichever sensor is first names the second: the report (unasked), or the poller, which
    // reads another socket path in its environment (absent: socket-changed). An evasion either way.
    assert.match(how[1]!, /^(reported unasked|absent socket-changed) WARN$/);
    // (The harness's own sleeps run without the library in the same container: findings too.)
    const found = violations(result).filter((r) => r.body.includes(programs.glibc));
    const rules = how.map((h) => h.split(" ")[1]);
    assert.deepEqual(found.map((r) => [attr(r, "microenforcer.rule"), attr(r, "microenforcer.action")]), rules.map((rule) => [rule, "killed"]), found.map((r) => r.body).join("\n"));
  });

  it("enforce: drift is decided before main from the executable's ctime the process reported", async () => {
    const result = await run(
      `sleep 1.1; cp /bin/true $WORK/dropped; $WORK/dropped; echo "rc=$?"; rm $WORK/dropped`,
      `  enforcementMode: enforce\n  controls:\n    drift: {block: true}\n`,
    );
    // What the sensor made of it, should the program not have been stopped before main.
    const seen = result.records
      .filter((r) => /\/dropped/.test(String(attr(r, "process.executable.path"))))
      .map((r) => `${r.eventName} ${attr(r, "microenforcer.sensor.detection")} ${attr(r, "microenforcer.process.preload")} ${attr(r, "microenforcer.process.preload.verdict")} ${attr(r, "microenforcer.action")} ${attr(r, "microenforcer.enforcement.latency_ms")}: ${r.body}`);
    assert.match(result.workloadLog, /rc=126/, seen.join("\n"));
    const drift = violations(result).filter((r) => attr(r, "microenforcer.control") === "drift");
    assert.equal(drift.length, 1);
    assert.equal(attr(drift[0]!, "microenforcer.action"), "blocked");
  });

  it("enforce: an allow table entry the sidecar never made lets a blocked program start, and says so; the sidecar still kills it", async () => {
    const forge = new URL("../fixtures/preload/forge-allow-table.ts", import.meta.url).pathname;
    const result = await run(
      `sleep 0.5; ${process.execPath} ${forge} ${programs.glibc} && ${programs.glibc} $WORK/forged 3000; echo "rc=$?"`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-glibc"]}\n`,
      {},
      "app",
    );
    assert.match(result.workloadLog, /rc=137/, "not stopped before main, killed once it ran");
    const [exec] = execs(result).filter((r) => args(r).endsWith("/forged 3000"));
    assert.ok(exec, result.workloadLog);
    assert.equal(attr(exec, "microenforcer.process.preload.verdict"), "unvetted");
    assert.equal(exec.severityText, "WARN");
    assert.match(String(exec.body), /by an allow table entry the sidecar never made/);
    assert.deepEqual(violations(result).map((r) => attr(r, "microenforcer.action")), ["killed"]);
  });

  it("enforce: a script written after the start is drift before main, whichever sensor sees its interpreter first", async () => {
    const result = await run(
      `sleep 1.1; printf 'echo ran > $WORK/script-ran\\n' > $WORK/dropped.sh; for i in 1 2 3 4 5 6 7 8 9 10 11 12; do /bin/sh $WORK/dropped.sh; echo "rc=$?"; done; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    drift: {block: true}\n`,
    );
    assert.equal(result.workloadLog.match(/rc=126/g)?.length, 12, result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /^script-ran$/m, "the script never ran");
    const drift = violations(result).filter((r) => attr(r, "microenforcer.rule") === "script changed after container start");
    assert.equal(drift.length, 12, violations(result).map((r) => r.body).join("\n"));
    assert.ok(drift.every((r) => attr(r, "microenforcer.action") === "blocked"));
  });

  it("enforce: a program run through the dynamic loader is judged as itself: a dropped one is drift, a blocked one blocked, before main", async () => {
    const loader = process.arch === "arm64" ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2";
    const forbidden = join(dir, "marker-forbidden");
    copyFileSync(programs.glibc, forbidden);
    const result = await run(
      `sleep 1.1; cp ${programs.glibc} $WORK/dropped
       ${loader} $WORK/dropped $WORK/dropped-ran; echo "rc=$?"
       ${loader} --argv0 innocent ${forbidden} $WORK/blocked-ran; echo "rc=$?"
       ${loader} ${programs.glibc} $WORK/allowed-ran; echo "rc=$?"; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    drift: {block: true}\n    executables: {blocked: ["marker-forbidden"]}\n`,
    );
    assert.deepEqual(result.workloadLog.match(/rc=\d+/g), ["rc=126", "rc=126", "rc=0"], result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /^(dropped|blocked)-ran$/m, "the stopped programs never ran");
    assert.match(result.workloadLog, /^allowed-ran$/m);
    const blocked = violations(result).filter((r) => attr(r, "microenforcer.action") === "blocked");
    assert.deepEqual(blocked.map((r) => attr(r, "microenforcer.rule")).sort(), ["marker-forbidden", "script changed after container start"], blocked.map((r) => r.body).join("\n"));
  });

  it("enforce: a copy or hard link of the loader under another name is known from inside: the program it runs is judged, every time", async () => {
    // The loaders the two test programs name (glibc's, musl's), copied before the sensor starts: no drift.
    const glibcCopy = join(dir, "update-check");
    const muslCopy = join(dir, "healthz");
    copyFileSync(loaderOf(programs.glibc), glibcCopy);
    copyFileSync(loaderOf(programs.musl), muslCopy);
    rmSync(join(dir, "warm"), { force: true });
    linkSync(glibcCopy, join(dir, "warm"));
    const forbidden = join(dir, "marker-forbidden");
    copyFileSync(programs.glibc, forbidden);
    const result = await run(
      `${glibcCopy} ${programs.glibc} $WORK/first; echo "rc=$?"; sleep 0.3
       ${glibcCopy} ${programs.glibc} $WORK/second; echo "rc=$?"
       ${glibcCopy} ${forbidden} $WORK/copy-ran; echo "rc=$?"
       ${join(dir, "warm")} ${forbidden} $WORK/link-ran; echo "rc=$?"
       ${muslCopy} ${forbidden} $WORK/musl-ran; echo "rc=$?"; ls $WORK`,
      `  enforcementMode: enforce
  controls:
    executables: {blocked: ["marker-forbidden"]}
`,
      {},
      "app",
    );
    assert.deepEqual(result.workloadLog.match(/rc=\d+/g), ["rc=0", "rc=0", "rc=126", "rc=126", "rc=126"], result.workloadLog);
    assert.doesNotMatch(result.workloadLog, /^(copy|link|musl)-ran$/m, "the blocked program never ran");
    const runs = (marker: string): JsonRecord => {
      const records = execs(result).filter((r) => args(r).endsWith(`/${marker}`));
      assert.equal(records.length, 1, `${marker}: ${records.length} records`);
      return records[0]!;
    };
    for (const marker of ["first", "second", "copy-ran", "link-ran", "musl-ran"]) {
      const r = runs(marker);
      assert.equal(attr(r, "microenforcer.process.exe_loader"), true, `${marker}: ${JSON.stringify(r.attributes)}`);
      assert.equal(attr(r, "microenforcer.process.preload.verdict"), "asked", `${marker}: a loader never stands`);
    }
    assert.equal(attr(runs("first"), "microenforcer.process.script.path"), programs.glibc, "the program the copy ran is in its record");
    const blocked = violations(result).filter((r) => attr(r, "microenforcer.action") === "blocked");
    assert.equal(blocked.length, 3, violations(result).map((r) => r.body).join("\n"));
    assert.ok(blocked.every((r) => attr(r, "microenforcer.rule") === "marker-forbidden"));
  });

  it("drift of a binary dropped into a system directory, run for a few ms and deleted at once: every run, from the identity the process reported", async () => {
    const result = await run(
      `sleep 1.1; for i in 1 2 3 4 5; do cp /bin/sleep /usr/local/sbin/kworker$i && /usr/local/sbin/kworker$i 0.003; rm /usr/local/sbin/kworker$i; done`,
      `  controls:\n    drift: {block: true}\n`,
      // A tmpfs of the namespace's own: nothing is written to the host's system directory.
      { beforeSensor: "mount -t tmpfs none /usr/local/sbin || exit 95" },
    );
    const drift = violations(result).filter((r) => attr(r, "microenforcer.control") === "drift" && /\/usr\/local\/sbin\/kworker\d$/.test(String(attr(r, "process.executable.path"))));
    assert.equal(new Set(drift.map((r) => attr(r, "process.executable.path"))).size, 5, violations(result).map((r) => r.body).join("\n"));
  });

  it("enforce: a program allowed before main is asked about once; its later runs go on without waiting until its file changes", async () => {
    const g = programs.glibc;
    const result = await run(
      `${g} $WORK/first; sleep 0.3; ${g} $WORK/second; ${g} $WORK/third; chmod 0755 ${g}; ${g} $WORK/changed; echo "rc=$?"
       for i in 1 2; do ${programs.musl} $WORK/blocked-$i; echo "rc=$?"; sleep 0.3; done; ls $WORK`,
      `  enforcementMode: enforce\n  controls:\n    executables: {blocked: ["**/marker-musl"]}\n    drift: {block: true}\n`,
      {},
      "app",
    );
    const verdict = (marker: string): unknown => {
      const records = execs(result).filter((r) => args(r).endsWith(`/${marker}`));
      assert.equal(records.length, 1, `${marker}: ${records.length} records`);
      return attr(records[0]!, "microenforcer.process.preload.verdict");
    };
    assert.deepEqual(["first", "second", "third", "changed"].map(verdict), ["asked", "standing", "standing", "asked"], "asked once, then standing, asked again once chmod moved the file's ctime");
    assert.equal(result.workloadLog.match(/rc=126/g)?.length, 3, result.workloadLog);
    const blocked = violations(result).filter((r) => attr(r, "microenforcer.action") === "blocked");
    assert.deepEqual(
      blocked.map((r) => attr(r, "microenforcer.control")),
      ["drift", "executables", "executables"],
      "the changed file is drift now, stopped before main; a blocked program never stands: each run is stopped",
    );
    assert.match(result.workloadLog, /^third$/m, "the standing runs ran");
    assert.doesNotMatch(result.workloadLog, /^(changed|blocked-\d)$/m, "none of the stopped ones ran");
  });

  it("enforce: fails open when the sidecar is gone (the policy's default), closed when it says deny", async () => {
    const open = await run(`kill -9 $SENSOR; sleep 0.1; ${programs.glibc} $WORK/open; echo "rc=$?"; ls $WORK`, `  enforcementMode: enforce\n`);
    assert.match(open.workloadLog, /rc=0/);
    assert.match(open.workloadLog, /^open$/m, "main ran");
    const closed = await run(`kill -9 $SENSOR; sleep 0.1; ${programs.glibc} $WORK/closed; echo "rc=$?"`, `  enforcementMode: enforce\n  verdict: {failure: deny}\n`);
    assert.match(closed.workloadLog, /rc=126/);
    assert.match(closed.workloadLog, /no verdict from the microenforcer sidecar \(policy failure choice: deny\)/);
  });
});
