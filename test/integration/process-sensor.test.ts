/**
 * The real CLI against the real kernel: every test runs `microenforcer watch` inside a
 * fresh PID namespace beside a real workload and checks the records a user would read.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isKernelThread, parseStat } from "../../microenforcer/proc/parse.ts";
import { cli, execs, execsOf, exits, runInPidNamespace, until, type JsonRecord } from "./pid-namespace.ts";

const attr = (r: JsonRecord, key: string): unknown => r.attributes[key];

describe("process sensor in a real PID namespace", function () {
  this.timeout(30_000);

  before(function () {
    if (process.getuid?.() !== 0) throw new Error("the integration tier needs root (unshare --pid, nsenter)");
  });

  it("prints one JSON record per line in the documented shape, and never reports itself", async () => {
    const run = await runInPidNamespace("sleep 0.05");
    assert.equal(run.exitCode, 0, run.stderr);
    for (const r of run.records) {
      assert.deepEqual(Object.keys(r), ["timestamp", "observedTimestamp", "severityNumber", "severityText", "eventName", "body", "attributes", "resource"]);
      assert.match(r.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(r.resource["service.name"], "microenforcer");
    }
    const init = execs(run).find((r) => attr(r, "process.pid") === 1);
    assert.ok(init, "PID 1 is reported from the startup scan");
    assert.equal(attr(init, "microenforcer.exec.origin"), "container-init");
    assert.equal(attr(init, "microenforcer.sensor.detection"), "startup");
    const own = execs(run).filter((r) => (attr(r, "process.command_args") as string[] | undefined)?.[1] === cli);
    assert.deepEqual(own, [], "the sensor's own process is excluded");
    const sleep = execsOf(run, "sleep", "0.05");
    assert.equal(sleep.length, 1);
    assert.equal(attr(sleep[0]!, "process.parent_pid"), 1);
    assert.equal(attr(sleep[0]!, "process.executable.path"), "/usr/bin/sleep");
    assert.equal(attr(sleep[0]!, "process.command_line"), "sleep 0.05");
    assert.equal(sleep[0]!.severityText, "INFO");
    const exit = exits(run).find((r) => attr(r, "process.pid") === attr(sleep[0]!, "process.pid"));
    assert.ok(exit, "its exit is reported");
    assert.ok(Date.parse(String(attr(exit, "process.exit.time"))) >= Date.parse(String(attr(sleep[0]!, "process.creation.time"))));
  });

  it("captures 20 ms processes with their command lines, and accounts for every sub-ms one it misses as a gap", async () => {
    const run = await runInPidNamespace(
      `for i in $(seq 1 15); do sleep 0.02$i; done
       for i in $(seq 1 30); do sh -c 'echo $$ >> $WORK/true.pids; exec /bin/true short-$0' $i; done
       cat $WORK/true.pids`,
    );
    for (let i = 1; i <= 15; i++) assert.equal(execsOf(run, "sleep", `0.02${i}`).length, 1, `sleep 0.02${i} (20 ms) captured once`);
    const truePids = run.workloadLog.trim().split("\n").map(Number);
    assert.equal(truePids.length, 30);
    const gaps = run.records.filter((r) => r.eventName === "microenforcer.sensor.gap");
    const covered = (pid: number): boolean =>
      gaps.some((g) => Number(attr(g, "microenforcer.gap.first_pid")) <= pid && pid <= Number(attr(g, "microenforcer.gap.last_pid")));
    for (const [index, pid] of truePids.entries()) {
      const seen = execs(run).some((r) => attr(r, "process.pid") === pid);
      assert.ok(seen || covered(pid), `process ${index + 1} (pid ${pid}) is either recorded or inside a gap record`);
    }
    // Capture rates per lifetime are measured by `npm run bench:process`, not asserted here.
  });

  it("reports a fork followed by exec once, with the program it exec'd", async () => {
    const run = await runInPidNamespace("sh -c 'sleep 0.2; true'");
    const sleep = execsOf(run, "sleep", "0.2");
    assert.equal(sleep.length, 1);
    const pid = attr(sleep[0]!, "process.pid");
    assert.deepEqual(
      execs(run).filter((r) => attr(r, "process.pid") === pid).map((r) => attr(r, "process.command_line")),
      ["sleep 0.2"],
      "no second record showing the parent's image before the exec",
    );
  });

  it("reports an exec in place in an older process, and a fork that never execs", async () => {
    const run = await runInPidNamespace("( sleep 0.1; exec sleep 0.3 )");
    const replaced = execsOf(run, "sleep", "0.3");
    assert.equal(replaced.length, 1);
    assert.equal(attr(replaced[0]!, "microenforcer.exec.in_place"), true);
    const pid = attr(replaced[0]!, "process.pid");
    const before = execs(run).filter((r) => attr(r, "process.pid") === pid && r !== replaced[0]);
    assert.equal(before.length, 1, "the subshell itself was reported first");
    assert.equal(attr(before[0]!, "microenforcer.process.fork_only"), true);
    assert.equal(attr(before[0]!, "process.executable.name"), "dash");
  });

  it("records an old process's exec in place that lives for ms between two looks, when it forks, before its child", async () => {
    // The subshell is 1.1 s old: its next look is ~0.5 s away when it execs the 60 ms shell.
    const run = await runInPidNamespace("( sleep 1.1; exec sh -c 'sleep 0.06; true' )");
    const [child] = execsOf(run, "sleep", "0.06");
    const bodies = (records: JsonRecord[]): string => records.map((r) => r.body).join("\n");
    assert.ok(child, bodies(execs(run)));
    const all = execs(run);
    const replaced = all.filter((r) => attr(r, "process.pid") === attr(child, "process.parent_pid") && attr(r, "microenforcer.exec.in_place") === true);
    assert.equal(replaced.length, 1, bodies(all));
    assert.ok(all.indexOf(replaced[0]!) < all.indexOf(child), "the exec is recorded before its child");
  });

  it("never merges two processes that reuse one PID", async () => {
    // Writing ns_last_pid (root, as CRIU does) makes the kernel hand out the same PID again.
    const run = await runInPidNamespace(
      `sleep 0.15 & P=$!; wait $P; echo $((P - 1)) > /proc/sys/kernel/ns_last_pid; sleep 0.25 & Q=$!; wait $Q; echo "$P $Q"`,
    );
    const [p, q] = run.workloadLog.trim().split(" ").map(Number);
    assert.equal(p, q, "the workload got the same PID twice");
    const first = execsOf(run, "sleep", "0.15")[0]!;
    const second = execsOf(run, "sleep", "0.25")[0]!;
    assert.equal(attr(first, "process.pid"), p);
    assert.equal(attr(second, "process.pid"), p);
    assert.notEqual(attr(first, "process.creation.time"), attr(second, "process.creation.time"));
    const pidExits = exits(run).filter((r) => attr(r, "process.pid") === p);
    assert.deepEqual(pidExits.map((r) => attr(r, "process.command_line")), ["sleep 0.15", "sleep 0.25"], "each exit names its own process");
  });

  it("says when ns_last_pid is set back (root over the namespace, as CRIU), with when: what it could not tell meanwhile", async () => {
    // Written back below the writer's own PID, then quiet (no fork) so the trigger reads the set-back.
    const run = await runInPidNamespace(`python3 -c "import os, time; open('/proc/sys/kernel/ns_last_pid', 'w').write(str(os.getpid() - 3)); time.sleep(0.3)"`);
    assert.equal(run.exitCode, 0, run.stderr);
    const setBack = run.records.filter((r) => attr(r, "microenforcer.status.cause") === "pid-trigger-set-back");
    assert.equal(setBack.length, 1, run.records.map((r) => r.body).join("\n"));
    assert.equal(setBack[0]!.severityText, "WARN");
    assert.equal(attr(setBack[0]!, "microenforcer.pid_set_back.count"), 1);
    assert.ok(String(attr(setBack[0]!, "microenforcer.pid_set_back.since")) <= String(attr(setBack[0]!, "microenforcer.pid_set_back.until")));
    assert.match(setBack[0]!.body, /CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE/);
  });

  it("flags deleted and memfd executables", async () => {
    const run = await runInPidNamespace(
      `cp /bin/sleep $WORK/dropper
       ( exec 3< $WORK/dropper; rm $WORK/dropper; exec /proc/self/fd/3 0.2 )
       /usr/bin/python3 -c "import os; fd = os.memfd_create('payload'); os.write(fd, open('/bin/sleep', 'rb').read()); os.execv(f'/proc/self/fd/{fd}', ['payload', '0.2'])"`,
    );
    const deleted = execs(run).find((r) => String(attr(r, "process.executable.path")).endsWith("/dropper"));
    assert.ok(deleted, JSON.stringify(execs(run).map((r) => r.attributes["process.executable.path"])));
    assert.equal(attr(deleted, "microenforcer.process.exe_deleted"), true);
    const memfd = execsOf(run, "payload", "0.2")[0];
    assert.ok(memfd);
    assert.equal(attr(memfd, "process.executable.path"), "/memfd:payload");
    assert.equal(attr(memfd, "microenforcer.process.exe_memfd"), true);
  });

  it("tells an exec session (PPID 0, entered from outside) from the container's init and its children", async () => {
    // The harness's subshell execs the last command in place when it is old, looked at every
    // 100 ms (a shorter one may fall between two looks): 250 ms.
    const run = await runInPidNamespace("$SYNC wait; sleep 0.25", {
      env: { MICROENFORCER_CONTAINER: "app" },
      whilePaused: async (hostPid) => {
        const r = spawnSync("nsenter", ["-t", String(hostPid), "-p", "-m", "--", "sh", "-c", "sleep 0.12; sleep 0.13"], {
          env: { ...process.env, MICROENFORCER_CONTAINER: "app" },
        });
        assert.equal(r.status, 0, r.stderr.toString());
      },
    });
    const init = execs(run).find((r) => attr(r, "process.pid") === 1)!;
    assert.equal(attr(init, "k8s.container.name"), "app");
    const session = execsOf(run, "sh", "-c", "sleep 0.12; sleep 0.13")[0];
    assert.ok(session, "the session's shell is recorded");
    // Started from outside the namespace: no parent to name (absent, not 0).
    assert.equal(attr(session, "process.parent_pid"), undefined);
    assert.equal(attr(session, "microenforcer.exec.origin"), "exec-session");
    assert.equal(attr(session, "k8s.container.name"), "app");
    for (const args of [["sleep", "0.12"], ["sleep", "0.13"]]) {
      const child = execsOf(run, ...args)[0];
      assert.ok(child, `${args.join(" ")} recorded`);
      assert.equal(attr(child, "microenforcer.exec.origin"), "child");
      assert.equal(attr(child, "microenforcer.exec.session_pid"), attr(session, "process.pid"));
      assert.equal(attr(child, "k8s.container.name"), "app");
    }
    const initsOwn = execsOf(run, "sleep", "0.25")[0];
    assert.ok(initsOwn, "the init's own command is recorded");
    assert.equal(attr(initsOwn, "microenforcer.exec.session_pid"), undefined, "the init's own children are not in the session");
  });

  it("reports a multi-threaded process once, never its threads", async () => {
    const run = await runInPidNamespace(
      `/usr/bin/python3 -c "import threading, time; ts = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(6)]; [t.start() for t in ts]; [t.join() for t in ts]" threads-marker`,
    );
    const python = execs(run).filter((r) => (attr(r, "process.command_args") as string[] | undefined)?.includes("threads-marker"));
    assert.equal(python.length, 1, JSON.stringify(python.map((r) => r.attributes["process.pid"])));
    assert.equal(exits(run).filter((r) => attr(r, "process.pid") === attr(python[0]!, "process.pid")).length, 1);
  });

  it("keeps recording to stdout when the OTLP collector is unreachable", async () => {
    const run = await runInPidNamespace("sleep 0.15", {
      watchArgs: ["--exporter", "both"],
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_EXPORTER_OTLP_TIMEOUT: "500" },
    });
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(execsOf(run, "sleep", "0.15").length, 1);
    assert.match(run.stderr, /127\.0\.0\.1:9|ECONNREFUSED|export/i, "the delivery failure is reported on stderr");
  });

  it("falls back to scanning /proc, and says so, when ns_last_pid is unavailable", async () => {
    // A tmpfs over /proc/sys/kernel (in this namespace's own mounts) hides ns_last_pid, as
    // a kernel without CONFIG_CHECKPOINT_RESTORE would.
    const run = await runInPidNamespace("sleep 0.1", { beforeSensor: "mount -t tmpfs none /proc/sys/kernel" });
    assert.equal(run.exitCode, 0, run.stderr);
    const status = run.records.find((r) => attr(r, "microenforcer.sensor.trigger") !== undefined)!;
    assert.equal(attr(status, "microenforcer.sensor.trigger"), "scan");
    assert.equal(status.severityText, "WARN");
    assert.match(status.body, /ns_last_pid unavailable/);
    assert.equal(execsOf(run, "sleep", "0.1").length, 1, "a 100 ms process is still captured");
  });

  it("records processes of another UID", async () => {
    const run = await runInPidNamespace("setpriv --reuid 1000 --regid 1000 --clear-groups sleep 0.1");
    const sleep = execsOf(run, "sleep", "0.1")[0];
    assert.ok(sleep);
    assert.equal(attr(sleep, "process.user.id"), 1000);
  });

  it("says once what it cannot read when it runs without privileges over other users' processes", async () => {
    // The sensor as UID 1000 (what Fargate gives when the app runs as another user): root's
    // /proc/PID/exe and environ are off limits, and the sensor must say so instead of failing.
    const run = await runInPidNamespace("sleep 0.1; sleep 0.11", { sensorPrefix: ["setpriv", "--reuid", "1000", "--regid", "1000", "--clear-groups"] });
    assert.equal(run.exitCode, 0, run.stderr);
    const sleep = execsOf(run, "sleep", "0.1")[0];
    assert.ok(sleep, "processes are still recorded, from what is readable");
    assert.equal(attr(sleep, "process.executable.path"), undefined);
    const statuses = run.records.filter((r) => r.eventName === "microenforcer.sensor.status" && attr(r, "microenforcer.status.cause") === "exe:EACCES:0:uid");
    assert.equal(statuses.length, 1, "reported once per cause");
    assert.equal(statuses[0]!.severityText, "WARN");
    assert.match(statuses[0]!.body, /Cause: they run as UID 0 GID 0, the sidecar as UID 1000 GID 1000.*CAP_SYS_PTRACE/);
  });

  it("run on a plain host, records no kernel thread, and kthreadd (PID 2, PPID 0) is no exec session", async () => {
    const kernelThreads = (): Set<number> => {
      const pids = new Set<number>();
      for (const name of readdirSync("/proc")) {
        if (!/^\d+$/.test(name)) continue;
        try {
          const stat = parseStat(readFileSync(`/proc/${name}/stat`, "utf8"));
          if (stat !== undefined && isKernelThread(stat)) pids.add(stat.pid);
        } catch {
          // gone meanwhile
        }
      }
      return pids;
    };
    const before = kernelThreads();
    assert.ok(before.has(2), "this host shows kthreadd as PID 2");
    // The host's own PID namespace: no unshare. The startup scan reads every process, the
    // trigger every new one; the workload makes some.
    const sensor = spawn(process.execPath, [cli, "watch", "--exporter", "stdout", "--format", "json"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    sensor.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await until(() => out.includes('"microenforcer.sensor.trigger"'), 15_000, "sensor start");
    spawnSync("sh", ["-c", "for i in 1 2 3; do sleep 0.05; done"]);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    sensor.kill("SIGINT");
    await new Promise((resolve) => sensor.on("exit", resolve));
    const records = out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as JsonRecord);
    const processRecords = records.filter((r) => r.eventName === "microenforcer.process.exec" || r.eventName === "microenforcer.process.exit");
    assert.ok(processRecords.length > 10, "the host's processes are recorded");
    const kthreads = new Set([...before, ...kernelThreads()]);
    const leaked = processRecords.filter((r) => kthreads.has(Number(attr(r, "process.pid"))));
    assert.deepEqual(leaked.map((r) => r.body), [], "no record of a kernel thread");
    assert.ok(!records.some((r) => attr(r, "microenforcer.process.comm") === "kthreadd"));
  });

  it("follows the policy's forensics switches", async () => {
    const dir = mkdtempSync(join(tmpdir(), "microenforcer-policy-"));
    const policy = (forensics: string): string => {
      const file = join(dir, `${forensics.replace(/\W+/g, "-")}.yaml`);
      writeFileSync(file, `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: test}\nspec:\n  forensics: {${forensics}}\n`);
      return file;
    };
    const noArgs = await runInPidNamespace("sleep 0.1", { watchArgs: ["--policy", policy("fullCommandArguments: false")] });
    const sleep = execs(noArgs).find((r) => attr(r, "process.executable.path") === "/usr/bin/sleep");
    assert.ok(sleep);
    assert.equal(attr(sleep, "process.command_line"), undefined);
    assert.equal(attr(sleep, "process.command_args"), undefined);
    const noProcesses = await runInPidNamespace("sleep 0.1", { watchArgs: ["--policy", policy("processActivity: false")] });
    assert.deepEqual(execs(noProcesses), []);
    assert.deepEqual(exits(noProcesses), []);
  });
});

describe("watch command line", () => {
  const watch = (...args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [cli, "watch", ...args], { encoding: "utf8", timeout: 10_000 });
    return { status: r.status, stderr: r.stderr };
  };

  it("refuses an invalid policy with a precise message and exit code 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "microenforcer-policy-"));
    const file = join(dir, "bad.yaml");
    writeFileSync(file, "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: bad}\nspec:\n  enforcementMode: block\n");
    const r = watch("--policy", file);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${file.replace(/[/.]/g, "\\$&")}: /spec/enforcementMode: expected one of "audit", "enforce", found "block"`));
    assert.equal(watch("--policy", join(dir, "missing.yaml")).status, 1);
  });

  it("policy validate passes the examples and lists every error of a bad file", () => {
    const examples = new URL("../../policies/examples/", import.meta.url).pathname;
    const ok = spawnSync(process.execPath, [cli, "policy", "validate", `${examples}forensics-only.yaml`, `${examples}strict-enforce.yaml`], { encoding: "utf8" });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /payments-strict \(enforce\) valid/);
    const dir = mkdtempSync(join(tmpdir(), "microenforcer-policy-"));
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: bad}\nspec:\n  priority: high\n  controls: {drift: {block: maybe}}\n");
    const failed = spawnSync(process.execPath, [cli, "policy", "validate", `${examples}exec-lockdown.yaml`, bad], { encoding: "utf8" });
    assert.equal(failed.status, 1);
    assert.deepEqual(failed.stderr.trim().split("\n"), [
      `${bad}: /spec/priority: expected integer, found "high"`,
      `${bad}: /spec/controls/drift/block: expected boolean, found "maybe"`,
    ]);
    assert.equal(spawnSync(process.execPath, [cli, "policy", "check"], { encoding: "utf8" }).status, 2);
  });

  it("refuses unknown options and values with exit code 2", () => {
    assert.equal(watch("--exporter", "kafka").status, 2);
    assert.equal(watch("--bogus").status, 2);
  });

  it("rejects an unknown OTLP protocol by name", () => {
    const r = spawnSync(process.execPath, [cli, "watch", "--exporter", "otlp"], {
      encoding: "utf8",
      timeout: 10_000,
      env: { ...process.env, OTEL_EXPORTER_OTLP_PROTOCOL: "carrier-pigeon" },
    });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL/);
  });
});

