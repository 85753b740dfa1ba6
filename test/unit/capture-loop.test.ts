/**
 * The capture loop over a fake /proc and a clock the test moves: what it reports for
 * processes that start, fork, exec, exit and reuse PIDs, and what it counts as missed.
 * (test/integration/process-sensor.test.ts runs it against the real kernel.)
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CaptureLoop, defaultCaptureOptions } from "../../microenforcer/capture/capture-loop.ts";
import type { CaptureEvent } from "../../microenforcer/capture/events.ts";
import { messages, networkEvents, maxEventsPerPost } from "../../microenforcer/capture/messages.ts";
import { PidHistory } from "../../microenforcer/capture/pid-history.ts";
import { allocatedRanges, setBack } from "../../microenforcer/capture/pid-trigger.ts";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import { FakeProc } from "./fake-proc.ts";

/** Events as short strings: `spawn 11 curl exec trigger`, `exit 11`, `gap pid 3 (12-14)`. */
function describe_(events: CaptureEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case "spawn":
        return `spawn ${e.snapshot.pid} ${e.snapshot.args?.[0] ?? "?"} ${e.image} ${e.detection}`;
      case "exec":
        return `exec ${e.snapshot.pid} ${e.snapshot.args?.[0] ?? "?"}`;
      case "exit":
        return `exit ${e.pid}`;
      case "gap":
        return e.kind === "pid" ? `gap pid ${e.count} (${e.firstPid}-${e.lastPid})${e.late ? ` late ${e.late} of a burst of ${e.backlogPeak}` : ""}` : `gap tcp ${e.count}`;
      case "trigger":
        return `trigger ${e.mode}`;
      default:
        return e.type;
    }
  });
}

describe("CaptureLoop over a fake /proc", () => {
  let proc: FakeProc;
  let loop: CaptureLoop | undefined;
  /** `clock` times a tick's budget: by default it stands still, so no tick runs out of it. */
  const start = (options: Partial<typeof defaultCaptureOptions> = {}, clock = () => 0) => {
    loop = new CaptureLoop({ ...defaultCaptureOptions, ...options, procRoot: proc.root }, undefined, clock);
    return loop;
  };
  /** A clock 1 ms later at each read: a budget of 5 ms lets 4 PIDs be read. */
  const steps = (): (() => number) => {
    let t = 0;
    return () => t++;
  };
  /** PIDs first to last, long-lived programs of their own (orphans of PID 1): read, each is a spawn at once. */
  const burst = (first: number, last: number): void => {
    for (let pid = first; pid <= last; pid++) proc.add({ pid, ppid: 1, comm: "worker", startTicks: 100 + pid, exe: "/bin/worker", args: ["worker", String(pid)] });
  };
  beforeEach(() => {
    proc = new FakeProc({ lastPid: 10 });
    proc.add({ pid: 1, ppid: 0, comm: "pause", startTicks: 10, exe: "/pause", args: ["/pause"], container: "pod" }, false);
    proc.add({ pid: 10, ppid: 0, comm: "sh", startTicks: 100, exe: "/bin/sh", args: ["sh", "-c", "app"], container: "app" }, false);
  });
  afterEach(() => {
    loop?.close();
    loop = undefined;
    proc.cleanup();
  });

  it("reports what runs at start in start order, parents first, and never a kernel thread", () => {
    proc.add({ pid: 5, ppid: 10, comm: "worker", startTicks: 150, exe: "/bin/worker", args: ["worker"] }, false);
    proc.add({ pid: 2, ppid: 0, comm: "kthreadd", startTicks: 1, args: [], kernelThread: true }, false);
    const l = start();
    assert.deepEqual(describe_(l.start(0)), ["trigger ns_last_pid", "spawn 1 /pause exec startup", "spawn 10 sh exec startup", "spawn 5 worker exec startup"]);
  });

  it("holds a fork back until it execs, and reports it once, with the program it exec'd", () => {
    const l = start();
    l.start(0);
    proc.fork(10, 11, 200);
    assert.deepEqual(describe_(l.tick(1)), [], "still its parent's image: held");
    proc.exec(11, "/usr/bin/curl", ["curl", "-s", "https://example.test/"]);
    const events = l.tick(1.5);
    assert.deepEqual(describe_(events), ["spawn 11 curl exec trigger"]);
    const spawn = events[0] as Extract<CaptureEvent, { type: "spawn" }>;
    assert.deepEqual(spawn.snapshot.args, ["curl", "-s", "https://example.test/"]);
    assert.equal(spawn.snapshot.exe?.path, "/usr/bin/curl");
    assert.equal(spawn.observedAt, 1.5);
  });

  /**
   * Makes the next look at the process straddle an exec: environ becomes a FIFO whose writer
   * runs `change` (in the process's /proc directory) and closes it with `environ` written; the
   * returned function, once the writer is done, gives the process the environment `after`.
   */
  function straddleNextLook(pid: number, change: string, environ: string, after: string): () => Promise<void> {
    const dir = join(proc.root, String(pid));
    rmSync(join(dir, "environ"));
    assert.equal(spawnSync("mkfifo", [join(dir, "environ")]).status, 0);
    const writer = spawn("sh", ["-c", `cd "$0" && exec 3>environ && ${change} && printf '%s' "$1" | tr '|' '\\0' >&3`, dir, environ]);
    const exited = new Promise((resolve) => writer.on("exit", resolve));
    return async () => {
      await exited;
      rmSync(join(dir, "environ"));
      writeFileSync(join(dir, "environ"), after);
    };
  }

  it("holds a new container process whose first look straddled an exec, and reports it once from a look after", async () => {
    const l = start();
    l.start(0);
    // `nsenter` entering the namespace, as a runtime starts a container: its first look read
    // argv before execve and environ inside it (emptied, until the new stack is laid out).
    proc.add({ pid: 11, ppid: 0, comm: "nsenter", startTicks: 200, exe: "/usr/bin/nsenter", args: ["nsenter", "-t", "1", "--", "python3"], container: "web" });
    let done = straddleNextLook(11, `printf 'python3\\0' > cmdline`, "", "PATH=/bin\0MICROENFORCER_CONTAINER=web\0");
    assert.deepEqual(describe_(l.tick(1)), [], "held until its exec is done");
    await done();
    proc.exec(11, "/usr/bin/python3", ["python3", "server.py"]);
    let events = l.tick(1.5);
    assert.deepEqual(describe_(events), ["spawn 11 python3 exec trigger"]);
    assert.equal((events[0] as Extract<CaptureEvent, { type: "spawn" }>).snapshot.container, "web");
    // runc's init exec'ing a session's command: stat read before the exec, argv after it.
    proc.add({ pid: 12, ppid: 0, comm: "runc:[2:INIT]", startTicks: 300, exe: "/bin/sh", args: ["/bin/sh", "-c", "id"], container: "web" });
    done = straddleNextLook(12, `sed -i 's/(runc:\\[2:INIT\\])/(sh)/' stat`, "MICROENFORCER_CONTAINER=web|", "MICROENFORCER_CONTAINER=web\0");
    assert.deepEqual(describe_(l.tick(2)), [], "held: the look saw two images");
    await done();
    events = l.tick(2.5);
    assert.deepEqual(describe_(events), ["spawn 12 /bin/sh exec trigger"]);
    assert.equal((events[0] as Extract<CaptureEvent, { type: "spawn" }>).snapshot.comm, "sh", "not runc's init");
  });

  it("reports a fork that never execs as fork-only once holdForkMs is over, and one that exits held as exec-unseen", () => {
    const l = start();
    l.start(0);
    proc.fork(10, 11, 200);
    proc.fork(10, 12, 201);
    assert.deepEqual(describe_(l.tick(1)), []);
    proc.remove(12);
    assert.deepEqual(describe_(l.tick(2)), ["spawn 12 sh exec-unseen trigger", "exit 12"]);
    assert.deepEqual(describe_(l.tick(10)), []);
    assert.deepEqual(describe_(l.tick(22)), ["spawn 11 sh fork-only trigger"]);
  });

  it("holds a fork found by a rescan (the trigger missed it, or there is none) as it holds one the trigger found", () => {
    proc.cleanup();
    proc = new FakeProc({ trigger: false });
    proc.add({ pid: 10, ppid: 0, comm: "sh", startTicks: 100, exe: "/bin/sh", args: ["sh", "-c", "app"] }, false);
    const l = start();
    l.start(0);
    proc.fork(10, 11, 200);
    proc.fork(10, 12, 201);
    // Not an exec of sh: in complete mode that sight would wait for a report a fork never sends.
    assert.deepEqual(describe_(l.tick(10)), [], "still their parent's image: held");
    proc.exec(12, "/usr/bin/id", ["id"]);
    assert.deepEqual(describe_(l.tick(11)), ["spawn 12 id exec rescan"]);
    assert.deepEqual(describe_(l.tick(40)), ["spawn 11 sh fork-only rescan"]);
  });

  it("reports an exec in place of a process it already reported, and its exit", () => {
    const l = start();
    l.start(0);
    proc.exec(10, "/usr/bin/python3", ["python3", "app.py"]);
    // A process found at start is old: its next look is within maxCheckIntervalMs.
    assert.deepEqual(describe_(l.tick(50)), []);
    assert.deepEqual(describe_(l.tick(101)), ["exec 10 python3"]);
    proc.zombie(10);
    assert.deepEqual(describe_(l.tick(300)), ["exit 10"]);
  });

  it("never looks at the sensor's own process again, and still finds its exit in a rescan", () => {
    proc.add({ pid: 7, ppid: 1, comm: "node", startTicks: 90, exe: "/usr/bin/node", args: ["node", "microenforcer"] }, false);
    const l = start({ selfPid: 7 });
    assert.deepEqual(describe_(l.start(0)), ["trigger ns_last_pid", "spawn 1 /pause exec startup", "spawn 7 node exec startup", "spawn 10 sh exec startup"]);
    proc.exec(7, "/bin/sh", ["sh"]);
    proc.exec(10, "/usr/bin/python3", ["python3", "app.py"]);
    assert.deepEqual(describe_(l.tick(101)), ["exec 10 python3"], "the others' looks go on");
    proc.remove(7);
    assert.deepEqual(describe_(l.tick(1001)), ["exit 7"]);
  });

  it("counts PIDs handed out and gone before it looked, and says so in a gap event", () => {
    const l = start({ gapReportIntervalMs: 1000 });
    l.start(0);
    proc.setLastPid(14);
    assert.deepEqual(describe_(l.tick(1)), []);
    assert.deepEqual(describe_(l.tick(1000)), ["gap pid 4 (11-14)"]);
    assert.deepEqual(describe_(l.finish(1500)), [], "counted once");
  });

  it("looks once more at a PID handed out before its process showed in /proc, and only then counts it as a gap", () => {
    const l = start({ gapReportIntervalMs: 1000 });
    l.start(0);
    // fork: ns_last_pid moves, the /proc entry comes µs later (after this look).
    proc.setLastPid(12);
    assert.deepEqual(describe_(l.tick(1)), []);
    proc.add({ pid: 11, ppid: 10, comm: "curl", startTicks: 200, exe: "/usr/bin/curl", args: ["curl", "example.test"] }, false);
    assert.deepEqual(describe_(l.tick(2)), ["spawn 11 curl exec trigger"]);
    assert.deepEqual(describe_(l.tick(1000)), ["gap pid 1 (12-12)"], "12 never showed");
  });

  it("reads a burst a budget at a time, newest PIDs first: a process started during it is read at the next tick, the burst after", () => {
    const l = start({ tickBudgetMs: 5, minLooksPerTick: 0, rescanIntervalMs: 1, gapReportIntervalMs: 1000 }, steps());
    l.start(0);
    burst(11, 20);
    assert.deepEqual(describe_(l.tick(1)), ["spawn 11 worker exec trigger", "spawn 12 worker exec trigger", "spawn 13 worker exec trigger", "spawn 14 worker exec trigger"]);
    proc.add({ pid: 21, ppid: 10, comm: "curl", startTicks: 300, exe: "/usr/bin/curl", args: ["curl", "example.test"] });
    proc.remove(19);
    proc.remove(20);
    // The rescans (every tick here) leave the waiting PIDs to the backlog: all are `trigger`.
    assert.deepEqual(describe_(l.tick(2)), ["spawn 21 curl exec trigger", "spawn 15 worker exec trigger", "spawn 16 worker exec trigger", "spawn 17 worker exec trigger"]);
    assert.deepEqual(describe_(l.tick(3)), ["spawn 18 worker exec trigger"]);
    assert.deepEqual(describe_(l.tick(1000)), ["gap pid 2 (19-20) late 2 of a burst of 6"], "gone before their turn, without a second look, and said so");
  });

  it("reads a parent still waiting its turn before its child: the child is held as its fork and reported once, with what it exec'd", () => {
    const l = start({ tickBudgetMs: 5, minLooksPerTick: 0 }, steps());
    l.start(0);
    burst(11, 20);
    l.tick(1);
    proc.fork(18, 21, 300);
    assert.deepEqual(describe_(l.tick(2)), ["spawn 18 worker exec trigger", "spawn 15 worker exec trigger", "spawn 16 worker exec trigger", "spawn 17 worker exec trigger"]);
    proc.exec(21, "/usr/bin/id", ["id"]);
    assert.deepEqual(describe_(l.tick(3)), ["spawn 19 worker exec trigger", "spawn 20 worker exec trigger", "spawn 21 id exec trigger"]);
  });

  it("reads the PIDs handed out before a root first: a container's init waiting its turn is reported before an exec session into it", () => {
    const l = start({ tickBudgetMs: 5, minLooksPerTick: 0 }, steps());
    l.start(0);
    burst(11, 16);
    proc.add({ pid: 17, ppid: 0, comm: "nginx", startTicks: 217, exe: "/usr/sbin/nginx", args: ["nginx"], container: "web" });
    burst(18, 20);
    l.tick(1);
    proc.add({ pid: 21, ppid: 0, comm: "sh", startTicks: 300, exe: "/bin/sh", args: ["sh"], container: "web" });
    const events = describe_(l.tick(2));
    assert.deepEqual(events.slice(0, 7), ["spawn 15 worker exec trigger", "spawn 16 worker exec trigger", "spawn 17 nginx exec trigger", "spawn 18 worker exec trigger", "spawn 19 worker exec trigger", "spawn 20 worker exec trigger", "spawn 21 sh exec trigger"]);
  });

  it("reads minLooksPerTick PIDs a tick however late the thread runs: an ordinary tick's few are not put off", () => {
    const l = start({ tickBudgetMs: 0, minLooksPerTick: 3 }, steps());
    l.start(0);
    burst(11, 14);
    assert.deepEqual(describe_(l.tick(1)), ["spawn 11 worker exec trigger", "spawn 12 worker exec trigger", "spawn 13 worker exec trigger"]);
    assert.deepEqual(describe_(l.tick(2)), ["spawn 14 worker exec trigger"]);
  });

  it("at the end, reads every PID still waiting its turn", () => {
    const l = start({ tickBudgetMs: 5, minLooksPerTick: 0 }, steps());
    l.start(0);
    burst(11, 20);
    l.tick(1);
    assert.deepEqual(describe_(l.finish(2)).filter((e) => e.startsWith("spawn")).length, 6);
  });

  it("keeps which PIDs were handed out when, and who ran at start, for reports of processes gone before a look", () => {
    const history = new PidHistory(64);
    const clock = { bootMs: 0, ticksPerSecond: 100 };
    loop = new CaptureLoop({ ...defaultCaptureOptions, procRoot: proc.root }, history);
    loop.start(1000);
    proc.setLastPid(14); // 11-14 handed out and gone before the look at 1500 ms
    loop.tick(1500);
    proc.add({ pid: 15, ppid: 10, comm: "ls", startTicks: 180, exe: "/bin/ls", args: ["ls"] });
    loop.tick(2000);
    assert.equal(history.judge(12, 120, clock, 15).kind, "handed-out", "missed, started in its window");
    assert.equal(history.judge(12, 190, clock, 15).kind, "not-handed-out", "handed out by 1500 ms, not at 1900");
    assert.equal(history.judge(15, 180, clock, 15).kind, "handed-out");
    assert.equal(history.judge(10, 100, clock, 15).kind, "handed-out", "alive at start");
    assert.equal(history.judge(10, 90, clock, 15).kind, "not-handed-out", "not the start time of the process alive then");
    assert.equal(history.judge(16, 195, clock, 15).kind, "not-handed-out", "never handed out");

    proc.setLastPid(9); // set back by root
    loop.tick(2500);
    assert.equal(history.judge(30, 220, clock, 9).kind, "unknown", "the set-back's window cannot be told");
  });

  it("tells a new process on a reused PID from the one before", () => {
    proc.add({ pid: 20, ppid: 1, comm: "old", startTicks: 300, exe: "/bin/old", args: ["old"] }, false);
    const l = start();
    l.start(0);
    proc.remove(20);
    proc.add({ pid: 20, ppid: 1, comm: "new", startTicks: 900, exe: "/bin/new", args: ["new"] });
    assert.deepEqual(describe_(l.tick(1)), ["exit 20", "spawn 20 new exec trigger"]);
  });

  it("scans /proc when ns_last_pid is set back, instead of walking a wrap of millions of PIDs, and says it was set back", () => {
    proc.setLastPid(4_000_000);
    const l = start();
    l.start(0);
    proc.add({ pid: 3, ppid: 1, comm: "restored", startTicks: 400, exe: "/bin/restored", args: ["restored"] });
    const events = l.tick(1);
    assert.deepEqual(describe_(events), ["pid-set-back", "spawn 3 restored exec rescan"]);
    assert.deepEqual(events[0], { type: "pid-set-back", count: 1, since: 0, until: 1, lastPid: 3 });
  });

  it("says later set-backs at most once per gap report interval, counted, and the last ones at the end", () => {
    const interval = defaultCaptureOptions.gapReportIntervalMs;
    const l = start();
    l.start(0);
    const setBackAt = (now: number): string[] => {
      proc.setLastPid(20);
      l.tick(now - 1);
      proc.setLastPid(5);
      return describe_(l.tick(now)).filter((e) => e === "pid-set-back");
    };
    assert.deepEqual(setBackAt(10), ["pid-set-back"], "the first at once");
    assert.deepEqual([setBackAt(20), setBackAt(30)], [[], []], "a writer of ns_last_pid could otherwise make a record a tick");
    const due = l.tick(10 + interval).filter((e) => e.type === "pid-set-back");
    assert.deepEqual(due, [{ type: "pid-set-back", count: 2, since: 19, until: 30, lastPid: 5 }]);
    setBackAt(interval + 100);
    assert.deepEqual(l.finish(interval + 200).filter((e) => e.type === "pid-set-back").map((e) => e.type === "pid-set-back" && e.count), [1]);
  });

  it("falls back to scanning /proc, and says why, without ns_last_pid", () => {
    proc.cleanup();
    proc = new FakeProc({ trigger: false });
    proc.add({ pid: 10, ppid: 0, comm: "sh", startTicks: 100, exe: "/bin/sh", args: ["sh"] }, false);
    const l = start();
    const first = l.start(0);
    assert.equal(first[0]?.type === "trigger" && first[0].mode, "scan");
    assert.match(first[0]?.type === "trigger" ? (first[0].reason ?? "") : "", /ns_last_pid unavailable/);
    assert.equal(l.nextDelayMs(0), defaultCaptureOptions.fallbackScanMs);
    proc.add({ pid: 11, ppid: 10, comm: "ls", startTicks: 200, exe: "/bin/ls", args: ["ls"] }, false);
    assert.deepEqual(describe_(l.tick(10)), ["spawn 11 ls exec rescan"]);
  });

  it("while idle, wakes only at the idle tick (longer while the library reports) and looks at old processes then; while active, for each due look", () => {
    const l = start();
    l.start(0);
    l.tick(2000); // the startup processes' looks (due at 100) run; the next are due at 2100
    assert.equal(l.nextDelayMs(2095), defaultCaptureOptions.idleTickMs, "a look due in 5 ms waits for the idle tick");
    l.setPreload(true);
    assert.equal(l.nextDelayMs(2095), defaultCaptureOptions.preloadIdleTickMs);
    proc.add({ pid: 11, ppid: 10, comm: "ls", startTicks: 200, exe: "/bin/ls", args: ["ls"] });
    l.tick(2200); // a new PID: active again, and the young process is looked at every fastTickMs
    assert.equal(l.nextDelayMs(2200), defaultCaptureOptions.fastTickMs);
  });

  it("while the library reports execs, looks at an old process for an exec in place or its exit every 300 ms instead of 100", () => {
    const l = start();
    l.start(0);
    l.setPreload(true);
    assert.deepEqual(describe_(l.tick(100)), [], "the looks scheduled before, at 100 ms");
    proc.exec(10, "/usr/bin/python3", ["python3", "app.py"]);
    assert.deepEqual(describe_(l.tick(300)), []);
    assert.deepEqual(describe_(l.tick(400)), ["exec 10 python3"]);
    l.setPreload(false);
    proc.exec(10, "/bin/sh", ["sh"]);
    assert.deepEqual(describe_(l.tick(700)), ["exec 10 sh"], "the look scheduled at 700 ms");
    proc.exec(10, "/usr/bin/python3", ["python3", "app.py"]);
    assert.deepEqual(describe_(l.tick(800)), ["exec 10 python3"]);
  });

  it("says when it ran a second or more after a planned tick (stopped or starved), with the PIDs handed out meanwhile, before what it then found", () => {
    const l = start();
    l.start(0);
    const first = l.nextDelayMs(0);
    l.tick(first);
    const planned = first + l.nextDelayMs(first);
    proc.setLastPid(12);
    proc.add({ pid: 13, ppid: 10, comm: "nc", startTicks: 300, exe: "/bin/nc", args: ["nc"] });
    const woke = planned + defaultCaptureOptions.stallMs;
    const events = l.tick(woke);
    assert.deepEqual(events[0], { type: "stall", since: first, until: woke, pidCount: 3 });
    assert.deepEqual(describe_(events.slice(1)), ["spawn 13 nc exec trigger"], "what was still there comes after");
    const late = woke + l.nextDelayMs(woke) + defaultCaptureOptions.stallMs - 1;
    assert.ok(!l.tick(late).some((e) => e.type === "stall"), "late by less than stallMs: no stall");
    assert.ok(!l.tick(late + 60_000).some((e) => e.type === "stall"), "a tick without a planned one (a caller's own pace): no stall");
  });

  it("says so too when the stop came during a tick, before the next one was planned", () => {
    const l = start();
    l.start(0);
    l.tick(l.nextDelayMs(0));
    const resumed = 1 + defaultCaptureOptions.stallMs + 500;
    const woke = resumed + l.nextDelayMs(resumed);
    assert.equal(l.tick(woke)[0]?.type, "stall");
  });

  it("at the end, reports every exit not seen yet and the gaps", () => {
    const l = start();
    l.start(0);
    proc.setLastPid(12);
    l.tick(1);
    proc.remove(10);
    assert.deepEqual(describe_(l.finish(2)), ["exit 10", "gap pid 2 (11-12)"]);
  });
});

describe("the trigger's PID arithmetic", () => {
  it("lists the PIDs handed out, across a wrap at pid_max", () => {
    assert.deepEqual(allocatedRanges(10, 13, 32768), [{ first: 11, last: 13 }]);
    assert.deepEqual(allocatedRanges(32766, 301, 32768), [{ first: 32767, last: 32767 }, { first: 300, last: 301 }]);
    assert.deepEqual(allocatedRanges(32767, 300, 32768), [{ first: 300, last: 300 }]);
  });

  it("takes a move back further than a wrap explains for a set-back, not a wrap", () => {
    assert.equal(setBack(32766, 301, 32768), false);
    assert.equal(setBack(4_000_000, 100, 4_194_304), true);
  });
});

describe("capture messages", () => {
  const observation: NetworkObservation = {
    kind: "listen",
    socket: { transport: "tcp", family: "ipv4", localAddress: "0.0.0.0", localPort: 80, remoteAddress: "0.0.0.0", remotePort: 0, state: "LISTEN", uid: 0, inode: 1, row: "" },
    attribution: "unknown",
    detection: "change",
  };

  it("cuts a large sample into network events of at most maxEventsPerPost observations, problems in the first", () => {
    const sample = { observations: Array.from({ length: 2 * maxEventsPerPost + 1 }, () => observation), problems: [{ pid: 7, code: "EACCES" }], malformed: 2 };
    const events = networkEvents(sample, 5);
    assert.deepEqual(
      events.map((e) => (e.type === "network" ? [e.sample.observations.length, e.sample.problems.length, e.sample.malformed] : [])),
      [
        [maxEventsPerPost, 1, 2],
        [maxEventsPerPost, 0, 0],
        [1, 0, 0],
      ],
    );
  });

  it("packs events into messages that weigh at most maxEventsPerPost, in order", () => {
    const exit = (pid: number): CaptureEvent => ({ type: "exit", pid, startTicks: 1, observedAt: 0 });
    const network = networkEvents({ observations: Array.from({ length: maxEventsPerPost }, () => observation), problems: [], malformed: 0 }, 0);
    const packed = messages([exit(1), ...network, exit(2), exit(3)]);
    assert.deepEqual(
      packed.map((m) => m.map((e) => e.type)),
      [["exit"], ["network"], ["exit", "exit"]],
    );
    assert.equal(messages(Array.from({ length: maxEventsPerPost + 1 }, (_, i) => exit(i))).length, 2);
  });
});
