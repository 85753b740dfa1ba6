import assert from "node:assert/strict";
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CaptureEvent } from "../../microenforcer/capture/events.ts";
import { verify } from "../../microenforcer/capture/exec-report-server.ts";
import { builtRecords, CompleteMode } from "../../microenforcer/pipeline/complete-mode.ts";
import { PolicyHolder } from "../../microenforcer/policy/policy-holder.ts";
import { violationRecord } from "../../microenforcer/records/violation-records.ts";
import { reportSnapshot, type ExecReport, type Sender } from "../../microenforcer/capture/exec-report.ts";
import { PolicyEngine } from "../../microenforcer/policy/engine.ts";
import { elfLinking, elfMachines, isDynamicLoader } from "../../microenforcer/proc/elf.ts";
import type { PreloadFacts } from "../../microenforcer/proc/preload-facts.ts";
import { execFingerprint, type ProcSnapshot } from "../../microenforcer/proc/reader.ts";
import type { SensorRecord } from "../../microenforcer/records/record.ts";
import { absenceReason, preloadVerdict, type PreloadSetup, type PreloadStatus, type PreloadVerdict } from "../../microenforcer/tracker/preload-status.ts";
import { ProcessTracker, type ProcessEvent } from "../../microenforcer/tracker/process-tracker.ts";
import { parsePolicies } from "../../policies/load.ts";
import { FakeProc } from "./fake-proc.ts";

const setup: PreloadSetup = { library: "/var/lib/microenforcer/preload/libmicroenforcer-exec.so", socket: "/var/lib/microenforcer/preload/exec.sock", machine: elfMachines.x86_64 };
const goodEnv = { ldPreload: `/opt/own.so:${setup.library}`, socket: setup.socket };
const dynamic = { kind: "dynamic", interpreter: "/lib64/ld-linux-x86-64.so.2", machine: elfMachines.x86_64, wide: true } as const;

describe("ELF linking", () => {
  it("finds the loader of a real dynamic program, and none in a static one", () => {
    const sh = elfLinking(readFileSync("/bin/sh").subarray(0, 4096));
    assert.equal(sh.kind, "dynamic");
    if (sh.kind === "dynamic") {
      assert.match(sh.interpreter, /^\/lib.*\/ld-linux-[\w-]+\.so\.\d$/);
      assert.equal(sh.machine, process.arch === "arm64" ? elfMachines.aarch64 : elfMachines.x86_64);
    }
    assert.equal(elfLinking(readFileSync("/bin/busybox").subarray(0, 4096)).kind, "static", "Debian's busybox-static");
  });

  it("says unknown for what is not an ELF file, or is cut before its program headers", () => {
    assert.equal(elfLinking(Buffer.from("#!/bin/sh\necho hi\n".padEnd(80))).kind, "unknown");
    assert.equal(elfLinking(readFileSync("/bin/sh").subarray(0, 100)).kind, "unknown");
    assert.equal(elfLinking(Buffer.alloc(0)).kind, "unknown");
  });

  it("knows a loader by its headers, whatever its name: ld.so, and no static-pie", () => {
    assert.equal(elfLinking(readFileSync(realpathSync(process.arch === "arm64" ? "/lib/ld-linux-aarch64.so.1" : "/lib64/ld-linux-x86-64.so.2"))).kind, "loader");
    // The dynamic section lies past the 4 KiB head in real loaders: read through readAt.
    const flags1 = (flags: number): Array<[number, number]> => [[0x6ffffffb, flags]];
    const linking = (bytes: Buffer): string => elfLinking(bytes.subarray(0, 4096), (offset, length) => bytes.subarray(offset, offset + length)).kind;
    assert.equal(linking(elf64(3, [[14, 1], [5, 0x300]])), "loader", "a shared object with no PT_INTERP (musl's libc.so has no soname either)");
    assert.equal(linking(elf64(3, flags1(0x08000001))), "static", "a static-pie: DF_1_PIE");
    assert.equal(linking(elf64(3)), "static", "a PIE with nothing to relocate");
    assert.equal(linking(elf64(2, [[5, 0x300]])), "static", "ET_EXEC");
    assert.equal(elfLinking(elf64(3, flags1(0x08000000)).subarray(0, 4096)).kind, "unknown", "its dynamic section cannot be read");
  });

  it("knows the dynamic loaders by name", () => {
    for (const name of ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1", "/lib/ld-musl-x86_64.so.1", "/usr/lib/ld-linux.so.2"]) assert.ok(isDynamicLoader(name), name);
    for (const name of ["/bin/ld", "/usr/lib/libld.so", "/bin/sh"]) assert.ok(!isDynamicLoader(name), name);
  });
});

/** An ELF64 little-endian x86_64 file: type, and a PT_DYNAMIC at 8 KiB with these entries (none: no PT_DYNAMIC). */
function elf64(type: number, dynamic?: Array<[number, number]>): Buffer {
  const bytes = Buffer.alloc(8192 + 16 * ((dynamic?.length ?? 0) + 1));
  bytes.writeUInt32BE(0x7f454c46, 0);
  bytes[4] = 2;
  bytes[5] = 1;
  bytes.writeUInt16LE(type, 16);
  bytes.writeUInt16LE(elfMachines.x86_64, 18);
  bytes.writeBigUInt64LE(64n, 32); // e_phoff
  bytes.writeUInt16LE(56, 54); // e_phentsize
  bytes.writeUInt16LE(dynamic === undefined ? 0 : 1, 56);
  if (dynamic !== undefined) {
    bytes.writeUInt32LE(2, 64); // PT_DYNAMIC
    bytes.writeBigUInt64LE(8192n, 64 + 8);
    bytes.writeBigUInt64LE(BigInt(16 * (dynamic.length + 1)), 64 + 32);
    dynamic.forEach(([tag, value], i) => {
      bytes.writeBigInt64LE(BigInt(tag), 8192 + 16 * i);
      bytes.writeBigUInt64LE(BigInt(value), 8192 + 16 * i + 8);
    });
  }
  return bytes;
}

describe("why the preload library did not report", () => {
  const root = { uid: 0, euid: 0 };

  it("waits for a report when everything says one is coming", () => {
    assert.equal(absenceReason({ linking: dynamic, setid: false, environ: goodEnv }, root, setup), undefined);
  });

  it("names what /proc tells: static, another architecture, secure execution, the environment", () => {
    const cases: Array<[PreloadFacts, { uid: number; euid: number }, string]> = [
      [{ linking: { kind: "static", machine: 62, wide: true }, environ: goodEnv }, root, "static"],
      [{ linking: { ...dynamic, machine: 3, wide: false }, environ: goodEnv }, root, "other-architecture"],
      [{ linking: dynamic, setid: true, environ: goodEnv }, root, "secure-execution"],
      [{ linking: dynamic, environ: goodEnv }, { uid: 1000, euid: 0 }, "secure-execution"],
      [{ linking: dynamic, environ: { socket: setup.socket } }, root, "environment-without-preload"],
      [{ linking: dynamic, environ: { ldPreload: "/opt/own.so", socket: setup.socket } }, root, "environment-without-preload"],
      [{ linking: dynamic, environ: { ldPreload: setup.library } }, root, "socket-changed"],
      [{ linking: dynamic, environ: { ldPreload: setup.library, socket: "/tmp/fake.sock" } }, root, "socket-changed"],
    ];
    for (const [facts, identity, reason] of cases) assert.equal(absenceReason(facts, identity, setup), reason, JSON.stringify(facts));
  });

  it("waits for a loader run as a program, under any name: it loads the library like any loader", () => {
    const loader = { kind: "loader", machine: elfMachines.x86_64, wide: true } as const;
    assert.equal(absenceReason({ linking: loader, environ: goodEnv }, root, setup), undefined);
    assert.equal(absenceReason({ linking: loader, environ: { socket: setup.socket } }, root, setup), "environment-without-preload");
    assert.equal(absenceReason({ linking: { ...loader, machine: 3, wide: false } }, root, setup), "other-architecture");
  });

  it("waits when the facts could not be read (gone, or not permitted)", () => {
    assert.equal(absenceReason({}, root, setup), undefined);
  });
});

/** A pipeline in miniature: tracker, engine and complete mode, as watch.ts wires them. */
function rig(controls = "", mode = "audit") {
  let now = 1_000_000;
  const kills: number[] = [];
  const policy = new PolicyHolder(parsePolicies(
    `apiVersion: microenforcer.dev/v1alpha1\nkind: RuntimePolicy\nmetadata: {name: p}\nspec:\n  enforcementMode: ${mode}\n${controls ? `  controls: ${controls}\n` : ""}`,
    "p.yaml",
  )[0]!);
  const clock = { bootMs: 0, ticksPerSecond: 100 };
  const engine = new PolicyEngine(policy, {
    facts: { stdio: () => ({ targets: [], inet: new Map() }), denial: () => undefined },
    enforcer: { kill: (pid) => (kills.push(pid), "killed") },
    clock,
    now: () => now,
  });
  const tracker = new ProcessTracker(999);
  let facts: PreloadFacts = { linking: dynamic, setid: false, environ: goodEnv };
  const complete = new CompleteMode({
    setup,
    clock,
    policy,
    readFacts: () => facts,
    now: () => now,
    graceMs: 500,
    controls: (event: ProcessEvent, waiting: boolean, preload: PreloadStatus | undefined) => {
      if (event.kind === "exit") return (engine.onExit(event.process), { records: [], problems: [] });
      const result = engine.onExec(event.process, event.observedAt, tracker.containerStartTicks(event.process.container), waiting, preload);
      return { records: result.violations.map((v) => violationRecord(v, policy.current, clock)), problems: result.problems, ...(result.deny && { deny: result.deny }) };
    },
  });
  complete.start(0);
  const out: SensorRecord[] = [];
  /** A poller event, as the pipeline takes it: dropped when it repeats a report. */
  const look = (event: Extract<CaptureEvent, { type: "spawn" | "exec" }>): void => {
    if (complete.repeatsReport(event.snapshot)) return;
    for (const e of tracker.handle(event)) out.push(...builtRecords(complete.records(e, event.snapshot.fingerprint).records));
  };
  const polled = (snapshot: ProcSnapshot, image: "exec" | "exec-unseen" = "exec", detection: "trigger" | "rescan" = "trigger"): void =>
    look({ type: "spawn", snapshot, detection, observedAt: now, image });
  /** The poller's look at a known process that shows another image now. */
  const execed = (snapshot: ProcSnapshot): void => look({ type: "exec", snapshot, observedAt: now });
  const exited = (pid: number, startTicks: number): void => {
    for (const e of tracker.handle({ type: "exit", pid, startTicks, observedAt: now })) out.push(...builtRecords(complete.records(e, undefined).records));
  };
  const reported = (report: ExecReport, sender?: Sender, verdict?: PreloadVerdict) => {
    const snapshot = reportSnapshot(report, sender);
    const preload: PreloadStatus = { status: "reported", ...(verdict !== undefined && { verdict }) };
    const merged = complete.reported(snapshot, preload, report.wait);
    const result = merged.result;
    if (merged.kind === "new") {
      for (const e of tracker.report(snapshot, now)) {
        const r = complete.records(e, snapshot.fingerprint, { preload, waiting: report.wait });
        result.records.push(...r.records);
        result.deny ??= r.deny;
      }
    }
    out.push(...builtRecords(result.records));
    return result.deny;
  };
  return {
    out,
    kills,
    polled,
    execed,
    exited,
    reported,
    /** Time passing with the sidecar's recheck timer firing every 50 ms, as watch.ts runs it. */
    tick: (ms: number) => {
      for (let step = 0; step < ms; step += 50) {
        now += Math.min(50, ms - step);
        out.push(...builtRecords(complete.expire().records));
      }
    },
    /** Time passing with nothing waiting: watch.ts then runs no recheck timer, so no expire call. */
    quiet: (ms: number) => (now += ms),
    repeatsReport: (s: ProcSnapshot) => complete.repeatsReport(s),
    /** A main thread that stalled `ms` (a busy node): the timer fires once, late, before anything else is read. */
    stall: (ms: number) => {
      now += ms;
      out.push(...builtRecords(complete.expire().records));
    },
    setFacts: (f: PreloadFacts) => (facts = f),
    finish: () => out.push(...builtRecords(complete.expire(true).records)),
  };
}

function report(pid: number, argv: string[], over: Partial<ExecReport> = {}): ExecReport {
  return {
    wait: false, standing: false, loader: false, pid, ppid: 1, startTicks: pid * 10, comm: argv[0]!, uid: { real: 0, effective: 0, saved: 0 }, gid: { real: 0, effective: 0, saved: 0 },
    exeLink: `/usr/bin/${argv[0]}`, rawArgs: Buffer.from(`${argv.join("\0")}\0`), cwd: "/srv", truncated: { exe: false, cmdline: false },
    exe: { device: "8:1", inode: 1234, ctimeMs: 5, mode: 0o100755 }, ...over,
  };
}

function snapshot(pid: number, argv: string[], over: Partial<ProcSnapshot> = {}): ProcSnapshot {
  return {
    pid, ppid: 1, comm: argv[0]!, state: "R", startTicks: pid * 10, uid: 0, euid: 0, exe: { path: `/usr/bin/${argv[0]}`, deleted: false, memfd: false }, args: argv,
    problems: [], fingerprint: execFingerprint(`/usr/bin/${argv[0]}`, `${argv.join("\0")}\0`), container: "app", ...over,
  };
}

const execRecords = (out: SensorRecord[]) => out.filter((r) => r.eventName === "microenforcer.process.exec");
const summary = (r: SensorRecord) => [
  r.attributes["process.pid"],
  r.attributes["process.command_line"],
  r.attributes["microenforcer.sensor.detection"],
  r.attributes["microenforcer.process.preload"],
  r.attributes["microenforcer.process.preload.reason"],
];

describe("complete mode: one record per exec from two sensors", () => {
  it("a report first: recorded at once; the poller's later sight of the same exec is dropped", () => {
    const t = rig();
    t.reported(report(10, ["ls", "-la"]));
    t.polled(snapshot(10, ["ls", "-la"]));
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [[10, "ls -la", "preload", "reported", undefined]]);
    assert.equal(execRecords(t.out)[0]!.attributes["process.working_directory"], "/srv");
  });

  it("a session's shell that reports before the poller sees it is an exec session of its container, known by its cgroup", () => {
    const proc = new FakeProc();
    try {
      const id = "ab".repeat(32);
      const t = rig();
      t.polled(snapshot(5, ["nginx"], { ppid: 0, containerId: id }));
      // `kubectl exec`: the runtime starts the shell from outside the pod's PID namespace (PPID 0).
      proc.add({ pid: 30, ppid: 0, comm: "sh", startTicks: 300, exe: "/bin/sh", args: ["sh"], container: "app", uid: 0 });
      writeFileSync(join(proc.root, "30/cgroup"), `0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope\n`);
      // What the fake /proc shows of it: the report holds up against it.
      const sh = report(30, ["sh"], { ppid: 0, container: "app", exeLink: "/bin/sh", exe: undefined });
      const check = verify(sh, proc.root);
      assert.deepEqual(check, { verification: "live", containerId: id });
      t.reported(sh, check);
      t.finish();
      const origins = execRecords(t.out).map((r) => [r.attributes["process.pid"], r.attributes["microenforcer.exec.origin"]]);
      assert.deepEqual(origins.sort(), [[30, "exec-session"], [5, "container-init"]]);
    } finally {
      proc.cleanup();
    }
  });

  it("a report that names a live process other than its own parent gets /proc's parent; one that waits is forged", () => {
    const proc = new FakeProc();
    try {
      proc.add({ pid: 7, ppid: 1, comm: "node", startTicks: 70, exe: "/usr/bin/node", args: ["node"], uid: 0 });
      proc.add({ pid: 40, ppid: 8, comm: "sh", startTicks: 400, exe: "/bin/sh", args: ["sh"], uid: 0 });
      const laundered = report(40, ["sh"], { ppid: 7, exeLink: "/bin/sh", exe: undefined });
      assert.deepEqual(verify(laundered, proc.root), { verification: "unverified", ppid: 8 });
      assert.match(verify({ ...laundered, wait: true }, proc.root).forged ?? "", /waits for a verdict, yet its parent is 8, not 7/);
      const t = rig();
      t.reported(laundered, verify(laundered, proc.root));
      t.finish();
      assert.deepEqual(execRecords(t.out).map((r) => r.attributes["process.parent_pid"]), [8]);
    } finally {
      proc.cleanup();
    }
  });

  it("the poller first: the record waits for the report and goes out once, with the report's facts", () => {
    const t = rig();
    t.polled(snapshot(11, ["id"]));
    t.tick(100);
    assert.deepEqual(execRecords(t.out), [], "held while the report is due");
    t.reported(report(11, ["id"]));
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [[11, "id", "preload", "reported", undefined]]);
    assert.equal(execRecords(t.out)[0]!.attributes["microenforcer.process.executable.inode"], 1234);
  });

  it("no report within the grace: absent, not reported, flagged — and its exit comes after it", () => {
    const t = rig();
    t.polled(snapshot(12, ["curl", "x"]));
    t.exited(12, 120);
    t.tick(600);
    assert.deepEqual(execRecords(t.out).map(summary), [[12, "curl x", "trigger", "absent", "not-reported"]]);
    assert.equal(execRecords(t.out)[0]!.severity, "WARN");
    assert.deepEqual(t.out.map((r) => r.eventName.split(".").pop()), ["exec", "exit"]);
  });

  it("a stalled sidecar takes the poller's sight first: the report already in the socket still counts, once", () => {
    // Seen and gone in one look of the poller; the report was written before main, but a
    // main thread that stalled reads the worker's events a turn before the socket's.
    const t = rig();
    t.polled(snapshot(21, ["hostname"]));
    t.exited(21, 210);
    t.stall(1200);
    assert.deepEqual(execRecords(t.out), [], "not overdue until the socket was read since");
    t.reported(report(21, ["hostname"]));
    t.tick(600);
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [[21, "hostname", "preload", "reported", undefined]]);
    assert.deepEqual(t.out.map((r) => r.eventName.split(".").pop()), ["exec", "exit"]);
  });

  it("a poller's look that missed the exe (gone between its reads of argv and exe) is the reported exec, in either order", () => {
    const noExe = (pid: number, argv: string[]) => snapshot(pid, argv, { exe: undefined, fingerprint: execFingerprint("", `${argv.join("\0")}\0`) });
    const t = rig();
    t.polled(noExe(23, ["true", "short-9"]));
    t.exited(23, 230);
    t.reported(report(23, ["true", "short-9"]));
    t.reported(report(24, ["hostname"]));
    t.polled(noExe(24, ["hostname"]));
    t.exited(24, 240);
    t.tick(2000);
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [
      [23, "true short-9", "preload", "reported", undefined],
      [24, "hostname", "preload", "reported", undefined],
    ]);
    assert.equal(execRecords(t.out)[0]!.attributes["process.executable.path"], "/usr/bin/true", "the exe the report gave");
  });

  it("a report later still, after the poller's record went out as absent: no second record", () => {
    const t = rig();
    t.polled(snapshot(22, ["uname", "-a"]));
    t.exited(22, 220);
    t.tick(2000);
    t.reported(report(22, ["uname", "-a"]));
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [[22, "uname -a", "trigger", "absent", "not-reported"]]);
  });

  it("what /proc already tells goes out at once: a static binary (not flagged), an environment without the library (flagged)", () => {
    const t = rig();
    t.setFacts({ linking: { kind: "static", machine: 62, wide: true }, environ: goodEnv });
    t.polled(snapshot(13, ["busybox", "true"]));
    t.setFacts({ linking: dynamic, environ: {} });
    t.polled(snapshot(14, ["sleep", "1"]));
    assert.deepEqual(execRecords(t.out).map(summary), [
      [13, "busybox true", "trigger", "absent", "static"],
      [14, "sleep 1", "trigger", "absent", "environment-without-preload"],
    ]);
    assert.deepEqual(execRecords(t.out).map((r) => [r.severity, r.attributes["microenforcer.process.preload.evasion"]]), [["INFO", undefined], ["WARN", true]]);
  });

  it("a fork the poller saw die replaces itself with the program the library reported, with one exit", () => {
    const t = rig();
    t.polled(snapshot(15, ["sh", "-c", "x"], { comm: "sh" }), "exec-unseen");
    t.exited(15, 150);
    t.reported(report(15, ["true"]));
    t.exited(15, 150);
    t.finish();
    assert.deepEqual(execRecords(t.out).map(summary), [[15, "true", "preload", "reported", undefined]]);
    assert.equal(t.out.filter((r) => r.eventName === "microenforcer.process.exit").length, 1);
  });

  it("enforce: a held poller event kills nothing; the waiting program is denied and the violation says blocked", () => {
    const t = rig("{executables: {blocked: ['**/nc']}}", "enforce");
    t.polled(snapshot(16, ["nc", "-l"]));
    assert.deepEqual(t.kills, [], "the poller leaves the program to the library's verdict");
    const deny = t.reported(report(16, ["nc", "-l"], { wait: true }));
    assert.equal(deny?.control, "executables");
    const violation = t.out.find((r) => r.eventName === "microenforcer.policy.violation");
    assert.equal(violation?.attributes["microenforcer.action"], "blocked");
    assert.deepEqual(t.kills, []);
  });

  it("enforce: a waiting program is denied at once, even behind an earlier sight of its process that no report will come for (a fork a rescan found)", () => {
    const t = rig("{executables: {blocked: ['**/nc']}}", "enforce");
    // A rescan finds the loop's fork still running the shell, a look later it runs nc: both wait for reports.
    t.polled(snapshot(17, ["sh", "-c", "loop"]), "exec", "rescan");
    t.execed(snapshot(17, ["nc", "-l"]));
    const deny = t.reported(report(17, ["nc", "-l"], { wait: true }));
    assert.equal(deny?.control, "executables", "the verdict does not wait for the shell's report, which never comes");
    assert.deepEqual(execRecords(t.out).map(summary), [
      [17, "sh -c loop", "rescan", undefined, undefined],
      [17, "nc -l", "preload", "reported", undefined],
    ], "in order, and the shell is not called absent: it may have been a fork, and nc's report proves the library ran");
    t.tick(1000);
    assert.equal(execRecords(t.out).length, 2, "nothing more once the grace is over");
  });

  it("enforce: without a report, the held program is killed once the grace is over, and the evasion is a finding", () => {
    const t = rig("{executables: {blocked: ['**/nc']}, preloadEvasion: {block: true}}", "enforce");
    t.polled(snapshot(17, ["nc", "-l"]));
    t.tick(600);
    assert.deepEqual(t.kills, [17]);
    const controls = t.out.filter((r) => r.eventName === "microenforcer.policy.violation").map((r) => [r.attributes["microenforcer.control"], r.attributes["microenforcer.rule"]]);
    assert.deepEqual(controls, [["executables", "**/nc"], ["preloadEvasion", "not-reported"]]);
  });

  it("enforce: a report that neither waited nor stood went on unasked (its library read another mode): WARN, and an evasion finding", () => {
    assert.equal(preloadVerdict({ wait: false, standing: false }, false, true), "unasked");
    assert.equal(preloadVerdict({ wait: false, standing: false }, false, false), undefined, "audit mode, or the mode only just turned to enforce");
    assert.deepEqual([preloadVerdict({ wait: true, standing: false }, false, true), preloadVerdict({ wait: false, standing: true }, true, true), preloadVerdict({ wait: false, standing: true }, false, true)], ["asked", "standing", "unvetted"]);
    assert.equal(preloadVerdict({ wait: true, standing: false }, false, true, true), "late", "asked, but taken after the library's wait was over");
    const t = rig("{preloadEvasion: {block: true}}", "enforce");
    t.reported(report(18, ["curl", "x"]), undefined, "unasked");
    assert.deepEqual(t.kills, [18]);
    const [exec] = execRecords(t.out);
    assert.equal(exec!.severity, "WARN");
    assert.equal(exec!.attributes["microenforcer.process.preload.verdict"], "unasked");
    const controls = t.out.filter((r) => r.eventName === "microenforcer.policy.violation").map((r) => [r.attributes["microenforcer.control"], r.attributes["microenforcer.rule"]]);
    assert.deepEqual(controls, [["preloadEvasion", "unasked"]]);
  });

  it("expects no report from a process of no app container (the pod's pause, the injector's own installer)", () => {
    const t = rig();
    t.setFacts({ linking: dynamic, environ: {} });
    t.polled(snapshot(19, ["node", "install"], { container: undefined }));
    assert.deepEqual(execRecords(t.out).map(summary), [[19, "node install", "trigger", undefined, undefined]]);
    assert.equal(execRecords(t.out)[0]!.severity, "INFO");
  });

  it("forgets an exited process 10 s after its exit when new ones come, with no expire call (nothing waited)", () => {
    const t = rig();
    t.reported(report(10, ["ls"]));
    t.exited(10, 100);
    t.quiet(5_000);
    t.reported(report(20, ["id"]));
    assert.ok(t.repeatsReport(snapshot(10, ["ls"])), "kept for reports and looks still in flight");
    t.quiet(6_000);
    t.reported(report(30, ["env"]));
    assert.ok(!t.repeatsReport(snapshot(10, ["ls"])), "forgotten once new processes come");
    assert.ok(t.repeatsReport(snapshot(20, ["id"])), "a live process stays known");
  });

  it("a report of a reused PID is a new process, never merged with the old one", () => {
    const t = rig();
    t.reported(report(18, ["ls"]));
    t.reported(report(18, ["ls"], { startTicks: 999 }));
    t.finish();
    assert.equal(execRecords(t.out).length, 2);
  });
});
