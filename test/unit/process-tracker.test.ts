/**
 * ProcessTracker, the pure state machine from capture events to process facts (container,
 * origin, exec sessions), and the process table it fills.
 */
import assert from "node:assert/strict";
import type { CaptureEvent } from "../../microenforcer/capture/events.ts";
import type { ProcSnapshot } from "../../microenforcer/proc/reader.ts";
import { ProcessTable } from "../../microenforcer/tracker/process-table.ts";
import { ProcessTracker, type ProcessEvent } from "../../microenforcer/tracker/process-tracker.ts";
import { processInfo } from "./process-fixture.ts";

const selfPid = 50;

function snapshot(over: Partial<ProcSnapshot> & Pick<ProcSnapshot, "pid" | "ppid" | "startTicks">): ProcSnapshot {
  const exe = over.exe ?? { path: "/bin/sh", deleted: false, memfd: false };
  return { comm: exe.path.split("/").pop()!, state: "S", uid: 1000, euid: 1000, exe, args: [exe.path], problems: [], fingerprint: "", ...over };
}

const spawn = (s: ProcSnapshot, at = 0): CaptureEvent => ({ type: "spawn", snapshot: s, detection: "trigger", observedAt: at, image: "exec" });
const exit = (pid: number, startTicks: number, at = 0): CaptureEvent => ({ type: "exit", pid, startTicks, observedAt: at });

/** `exec 12 exec-session session=12 app`, `exit 12`. */
function summary(events: ProcessEvent[]): string[] {
  return events.map((e) =>
    e.kind === "exit"
      ? `exit ${e.process.pid}`
      : `exec ${e.process.pid} ${e.process.origin}${e.process.sessionPid === undefined ? "" : ` session=${e.process.sessionPid}`} ${e.process.container.name ?? e.process.container.id ?? "?"}${e.inPlace ? " in-place" : ""}`,
  );
}

describe("ProcessTracker", () => {
  let tracker: ProcessTracker;
  const feed = (...events: CaptureEvent[]): string[] => events.flatMap((e) => summary(tracker.handle(e)));
  beforeEach(() => (tracker = new ProcessTracker(selfPid)));

  it("takes a container's first PPID-0 process for its init, and a later one while the init lives for an exec session", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app" })),
        spawn(snapshot({ pid: 20, ppid: 0, startTicks: 110, container: "db" })),
        spawn(snapshot({ pid: 30, ppid: 0, startTicks: 200, container: "app" })),
        spawn(snapshot({ pid: 31, ppid: 30, startTicks: 201 })),
        spawn(snapshot({ pid: 32, ppid: 31, startTicks: 202 })),
        spawn(snapshot({ pid: 11, ppid: 10, startTicks: 300 })),
      ),
      ["exec 10 container-init app", "exec 20 container-init db", "exec 30 exec-session session=30 app", "exec 31 child session=30 app", "exec 32 child session=30 app", "exec 11 child app"],
    );
    assert.equal(tracker.containerStartTicks({ name: "app" }), 100);
  });

  it("keeps each process's ancestry as it was at its start, nearest first, at most 8 deep; and its session and terminal", () => {
    const chain = Array.from({ length: 12 }, (_, i) => snapshot({ pid: 100 + i, ppid: i === 0 ? 0 : 99 + i, startTicks: 1000 + i, container: "app", session: 100, pgrp: 100 + i, tty: i > 5 }));
    const events = chain.flatMap((s) => tracker.handle(spawn(s)));
    const last = events.at(-1)!.process;
    assert.deepEqual(
      last.ancestors?.map((a) => a.pid),
      [110, 109, 108, 107, 106, 105, 104, 103],
    );
    assert.equal(last.ancestors?.[0]?.executable, "/bin/sh");
    assert.deepEqual([last.session, last.pgrp, last.tty], [100, 111, true]);
    assert.equal(events[0]!.process.ancestors, undefined, "a container's init has no parent in the namespace");
  });

  it("takes a later PPID-0 process for a probe only with exactly a probe's argv in the probe's container, known by name", () => {
    const probe = ["/bin/sh", "-c", "test -f /tmp/ready"];
    const withProbes = new ProcessTracker(selfPid, new ProcessTable(), {}, { app: [probe] });
    const feedProbes = (...events: CaptureEvent[]) => events.flatMap((e) => summary(withProbes.handle(e)));
    assert.deepEqual(
      feedProbes(
        spawn(snapshot({ pid: 9, ppid: 0, startTicks: 90, args: probe, container: "app" })),
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, args: probe, container: "app" })),
        spawn(snapshot({ pid: 11, ppid: 10, startTicks: 101 })),
        spawn(snapshot({ pid: 12, ppid: 0, startTicks: 102, args: [...probe, "x"], container: "app" })),
        spawn(snapshot({ pid: 13, ppid: 0, startTicks: 103, containerId: "c0ffee" })),
        spawn(snapshot({ pid: 14, ppid: 0, startTicks: 104, args: probe, containerId: "c0ffee" })),
      ),
      // A container's first process is its init, whatever it runs; in a container known only by its cgroup nothing is a probe.
      ["exec 9 container-init app", "exec 10 probe app", "exec 11 child app", "exec 12 exec-session session=12 app", "exec 13 container-init c0ffee", "exec 14 exec-session session=14 c0ffee"],
    );
  });

  it("in an injected pod, takes a container the injector did not admit (kubectl debug) for an exec session, from its first process", () => {
    const injected = new ProcessTracker(selfPid, new ProcessTable(), { app: "shop/api:1" });
    const feedInjected = (...events: CaptureEvent[]) => events.flatMap((e) => summary(injected.handle(e)));
    assert.deepEqual(
      feedInjected(
        // The pod's pause process, and its admitted container.
        spawn(snapshot({ pid: 1, ppid: 0, startTicks: 1, containerId: "5a5e" })),
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app", containerId: "a99" })),
        // An ephemeral container: no name in its environment, its own cgroup.
        spawn(snapshot({ pid: 40, ppid: 0, startTicks: 400, containerId: "deb06" })),
        spawn(snapshot({ pid: 41, ppid: 40, startTicks: 401 })),
        spawn(snapshot({ pid: 42, ppid: 0, startTicks: 402, containerId: "deb06" })),
        // A name the injector never gave.
        spawn(snapshot({ pid: 55, ppid: 0, startTicks: 500, container: "debugger-x1", containerId: "deb07" })),
        // Unreadable environment: nothing says it is not the pod's own.
        spawn(snapshot({ pid: 60, ppid: 0, startTicks: 600, containerId: "b0b", problems: [{ file: "environ", code: "EACCES", uid: 0 }] })),
        // runc's init, released before it exec'd the container's command: runc's environment, not the container's.
        spawn(snapshot({ pid: 70, ppid: 0, startTicks: 700, containerId: "c7", comm: "runc:[2:INIT]" })),
        // Caught inside execve, its environment emptied under the look: not known to be another's.
        spawn(snapshot({ pid: 80, ppid: 0, startTicks: 800, containerId: "c8", execving: true })),
      ),
      [
        "exec 1 container-init 5a5e",
        "exec 10 container-init app",
        "exec 40 exec-session session=40 deb06",
        "exec 41 child session=40 deb06",
        "exec 42 exec-session session=42 deb06",
        "exec 55 exec-session session=55 debugger-x1",
        "exec 60 container-init b0b",
        "exec 70 container-init c7",
        "exec 80 container-init c8",
      ],
    );
  });

  it("names a container whose init was first seen as runc's init by the command it execs, and its later processes by it", () => {
    const withImages = new ProcessTracker(selfPid, new ProcessTable(), { work: "registry.example/batch:2" });
    const seen = (...events: CaptureEvent[]): string[] => events.flatMap((e) => summary(withImages.handle(e)));
    assert.deepEqual(
      seen(
        // Found by a rescan while runc set the container up: runc's environment, no name.
        spawn(snapshot({ pid: 70, ppid: 0, startTicks: 700, containerId: "c7", comm: "runc:[2:INIT]", uid: 0, euid: 0 })),
        spawn(snapshot({ pid: 70, ppid: 0, startTicks: 700, containerId: "c7", container: "work", exe: { path: "/bin/sleep", deleted: false, memfd: false } })),
        // The environment is gone by the time it is read: the container's name still.
        spawn(snapshot({ pid: 71, ppid: 0, startTicks: 710, containerId: "c7", problems: [{ file: "environ", code: "ENOENT", uid: 0 }] })),
      ),
      ["exec 70 container-init c7", "exec 70 container-init work in-place", "exec 71 exec-session session=71 work"],
    );
    const [exit70] = withImages.handle(exit(70, 700));
    assert.equal(exit70?.process.container.image, "registry.example/batch:2");
    // A process that was not runc's init keeps the container it had: its environment is its own word.
    withImages.handle(spawn(snapshot({ pid: 80, ppid: 0, startTicks: 800, containerId: "c8" })));
    const [renamed] = withImages.handle(spawn(snapshot({ pid: 80, ppid: 0, startTicks: 800, containerId: "c8", container: "work" })));
    assert.equal(renamed?.process.container.name, undefined);
  });

  it("gives a process the image its container was admitted with, by the container's name (own keys only)", () => {
    const withImages = new ProcessTracker(selfPid, new ProcessTable(), { app: "registry.example/shop/api:1.4.2" });
    const [app] = withImages.handle(spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app" })));
    const [child] = withImages.handle(spawn(snapshot({ pid: 11, ppid: 10, startTicks: 101 })));
    const [odd] = withImages.handle(spawn(snapshot({ pid: 20, ppid: 0, startTicks: 100, container: "constructor" })));
    assert.equal(app?.process.container.image, "registry.example/shop/api:1.4.2");
    assert.equal(child?.process.container.image, "registry.example/shop/api:1.4.2");
    assert.equal(odd?.process.container.image, undefined);
  });

  it("takes a PPID-0 process after its container's init exited for the container's new init", () => {
    assert.deepEqual(
      feed(spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app" })), exit(10, 100), spawn(snapshot({ pid: 40, ppid: 0, startTicks: 500, container: "app" }))),
      ["exec 10 container-init app", "exit 10", "exec 40 container-init app"],
    );
    assert.equal(tracker.containerStartTicks({ name: "app" }), 500);
  });

  it("gives a child its parent's container unless its own environment names one, and falls back to the cgroup's id", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, containerId: "c0ffee" })),
        spawn(snapshot({ pid: 11, ppid: 10, startTicks: 101 })),
        spawn(snapshot({ pid: 12, ppid: 10, startTicks: 102, container: "sidekick" })),
      ),
      ["exec 10 container-init c0ffee", "exec 11 child c0ffee", "exec 12 child sidekick"],
    );
  });

  it("keeps the name a cgroup's container started with: a process cannot name another container in its environment", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app", containerId: "c0ffee" })),
        spawn(snapshot({ pid: 11, ppid: 10, startTicks: 101, container: "istio-proxy", containerId: "c0ffee" })),
        spawn(snapshot({ pid: 12, ppid: 11, startTicks: 102, container: "istio-proxy" })),
      ),
      ["exec 10 container-init app", "exec 11 child app", "exec 12 child app"],
    );
  });

  it("knows a container by its cgroup's id: an exec probe gone before its environment was read is an exec session of the named container", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app", containerId: "c0ffee" })),
        spawn(snapshot({ pid: 30, ppid: 0, startTicks: 200, container: "app", containerId: "c0ffee" })),
        // The probe's environ could not be read (it had exited); its cgroup could.
        spawn(snapshot({ pid: 40, ppid: 0, startTicks: 300, containerId: "c0ffee" })),
      ),
      ["exec 10 container-init app", "exec 30 exec-session session=30 app", "exec 40 exec-session session=40 app"],
    );
    assert.equal(tracker.containerStartTicks({ name: "app", id: "c0ffee" }), 100);
  });

  it("never reports the sensor's own process tree", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: selfPid, ppid: 1, startTicks: 90 })),
        spawn(snapshot({ pid: 51, ppid: selfPid, startTicks: 95 })),
        spawn(snapshot({ pid: 52, ppid: 51, startTicks: 96 })),
        exit(52, 96),
        exit(selfPid, 90),
      ),
      [],
    );
    assert.equal(tracker.size, 0);
  });

  it("takes no report for the sensor's own: a process that names the sensor as parent is recorded, and so are its children", () => {
    feed(spawn(snapshot({ pid: selfPid, ppid: 1, startTicks: 90 })));
    assert.deepEqual(summary(tracker.report(snapshot({ pid: 60, ppid: selfPid, startTicks: 95 }), 5)), ["exec 60 child ?"]);
    assert.deepEqual(feed(spawn(snapshot({ pid: 61, ppid: 60, startTicks: 96 }))), ["exec 61 child ?"]);
  });

  it("reports an exec in place with the new program, and ignores events of an earlier process on the same PID", () => {
    feed(spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app" })));
    const python = { path: "/usr/bin/python3", deleted: false, memfd: false };
    const [inPlace] = tracker.handle({ type: "exec", snapshot: snapshot({ pid: 10, ppid: 0, startTicks: 100, exe: python, args: ["python3", "-c", "x"] }), observedAt: 5 });
    assert.equal(inPlace?.kind === "exec" && inPlace.inPlace, true);
    assert.equal(inPlace?.process.exe?.path, "/usr/bin/python3");
    assert.deepEqual(inPlace?.process.args, ["python3", "-c", "x"]);
    assert.equal(inPlace?.process.origin, "container-init", "keeps what it was started as");
    assert.deepEqual(tracker.handle({ type: "exec", snapshot: snapshot({ pid: 10, ppid: 0, startTicks: 99 }), observedAt: 6 }), []);
    assert.deepEqual(feed(exit(10, 99)), []);
    assert.deepEqual(feed(exit(10, 100)), ["exit 10"]);
  });

  it("does not take a process younger than a child for its parent (its PID was reused)", () => {
    assert.deepEqual(
      feed(
        spawn(snapshot({ pid: 10, ppid: 0, startTicks: 100, container: "app" })),
        spawn(snapshot({ pid: 30, ppid: 0, startTicks: 200, container: "app" })),
        // PID 30 is reused by a process started after 31, whose parent it cannot be.
        exit(30, 200),
        spawn(snapshot({ pid: 30, ppid: 10, startTicks: 400 })),
        spawn(snapshot({ pid: 31, ppid: 30, startTicks: 300 })),
      ),
      ["exec 10 container-init app", "exec 30 exec-session session=30 app", "exit 30", "exec 30 child app", "exec 31 child ?"],
    );
  });

  it("says how a process was found and what is known of its image", () => {
    const [event] = tracker.handle({ type: "spawn", snapshot: snapshot({ pid: 10, ppid: 1, startTicks: 100 }), detection: "startup", observedAt: 0, image: "fork-only" });
    assert.equal(event?.process.detection, "startup");
    assert.equal(event?.process.image, "fork-only");
  });
});

describe("ProcessTable", () => {
  it("finds an exited process by its identity for the grace period, and a running one by its PID only while it runs", () => {
    const table = new ProcessTable(2000);
    const curl = processInfo({ pid: 212, startTicks: 500 });
    table.add(curl);
    assert.equal(table.get(212), curl);
    table.exit(curl, 1_000);
    assert.equal(table.get(212), undefined);
    assert.equal(table.owner(212, 500), curl);
    assert.equal(table.owner(212, 501), undefined);
    const other = processInfo({ pid: 300, startTicks: 700 });
    table.add(other);
    table.exit(other, 3_001);
    assert.equal(table.owner(212, 500), undefined, "forgotten once another exit comes after the grace period");
    assert.equal(table.latestOf(300), other);
  });

  it("keeps a new process on a PID when the previous one on it is forgotten", () => {
    const table = new ProcessTable(2000);
    const old = processInfo({ pid: 212, startTicks: 500 });
    table.add(old);
    table.exit(old, 0);
    const reused = processInfo({ pid: 212, startTicks: 900 });
    table.add(reused);
    table.exit(processInfo({ pid: 5 }), 5_000);
    assert.equal(table.owner(212, 900), reused);
    assert.equal(table.size, 1);
  });
});
