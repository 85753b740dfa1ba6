/**
 * Tamper evidence: what a start learns from the state file the previous run left in the
 * emptyDir (the app, with the sidecar's UID, can kill it), and the records that say so.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allocatedCount, allocatedRanges } from "../../microenforcer/capture/pid-trigger.ts";
import { RUN_STATE_FILE, RunStateFile } from "../../microenforcer/lifecycle/run-state-file.ts";
import { decodeRunState, encodeRunState, previousRun } from "../../microenforcer/lifecycle/run-state.ts";
import { heartbeatRecord, previousRunRecord } from "../../microenforcer/records/sensor-records.ts";

const t0 = Date.parse("2026-12-01T04:00:00Z");
const facts = { now: t0 + 90_000, firstPid: 500, pidMax: 32768 };
/** How many PIDs allocatedRanges lists from `last` to `current` at pid_max 32768. */
const rangeSize = (last: number, current: number): number => allocatedRanges(last, current, 32768).reduce((n, r) => n + r.last - r.first + 1, 0);

describe("lifecycle/run-state: what a start learns from the previous run", () => {
  it("a run killed without a word: blind from its last sign of life to now, the PIDs handed out in between", () => {
    const text = encodeRunState({ startedAt: t0 - 60_000, aliveAt: t0, lastPid: 200 });
    // PIDs 201..499 were somebody else's; 500 is the new sidecar's own process.
    assert.deepEqual(previousRun(text, facts), { kind: "unclean", since: t0, until: t0 + 90_000, pidCount: 299 });
  });

  it("a run stopped on a signal: blind from its stop (the app can send SIGTERM too)", () => {
    const text = encodeRunState({ startedAt: t0 - 60_000, aliveAt: t0, lastPid: 200, stoppedAt: t0 + 10 });
    assert.deepEqual(previousRun(text, facts), { kind: "stopped", since: t0 + 10, until: t0 + 90_000, pidCount: 299 });
  });

  it("counts across a wrap at pid_max, and not at all where ns_last_pid was set back or never read", () => {
    const wrapped = previousRun(encodeRunState({ startedAt: t0, aliveAt: t0, lastPid: 32760 }), { ...facts, firstPid: 310 });
    assert.equal(wrapped.kind === "unclean" && wrapped.pidCount, rangeSize(32760, 310) - 1);
    // A new PID namespace under the same emptyDir (the pod's sandbox recreated): PIDs started over.
    const setBack = previousRun(encodeRunState({ startedAt: t0, aliveAt: t0, lastPid: 4_000_000 }), { ...facts, firstPid: 12, pidMax: 4_194_304 });
    assert.equal(setBack.kind === "unclean" && setBack.pidCount, undefined);
    const unread = previousRun(encodeRunState({ startedAt: t0, aliveAt: t0 }), facts);
    assert.equal(unread.kind === "unclean" && unread.pidCount, undefined);
  });

  it("a file that is not what a run writes is damaged, never a first start", () => {
    for (const text of ["", "{", "null", '{"startedAt":1}', '{"startedAt":1,"aliveAt":2,"lastPid":-3}', '{"startedAt":1,"aliveAt":2,"stoppedAt":"x"}']) {
      const previous = previousRun(text, facts);
      assert.equal(previous.kind, "damaged", text);
    }
    assert.equal(typeof decodeRunState('{"startedAt":1,"aliveAt":2,"lastPid":7}'), "object");
  });

  it("allocatedCount agrees with the PID ranges allocatedRanges lists", () => {
    for (const [last, current] of [[10, 13], [32766, 301], [32767, 300]] as const) assert.equal(allocatedCount(last, current, 32768), rangeSize(last, current));
    assert.equal(allocatedCount(40, 40, 32768), 0);
  });
});

describe("lifecycle/run-state-file: the file in the emptyDir", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "microenforcer-run-state-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("a first start finds nothing; a start after it finds the run unclean until it stopped in order", () => {
    const first = new RunStateFile(dir, "/proc", t0, process.pid);
    assert.equal(first.previous, undefined);
    first.alive(t0 + 1000);
    const killed = new RunStateFile(dir, "/proc", t0 + 5000, process.pid + 1);
    assert.deepEqual(killed.previous && [killed.previous.kind, "since" in killed.previous && killed.previous.since], ["unclean", t0 + 1000]);
    killed.stopped(t0 + 6000);
    const state = decodeRunState(readFileSync(join(dir, RUN_STATE_FILE), "utf8"));
    assert.ok(typeof state === "object" && state.stoppedAt === t0 + 6000 && typeof state.lastPid === "number", JSON.stringify(state));
    assert.equal(new RunStateFile(dir, "/proc", t0 + 7000, process.pid).previous?.kind, "stopped");
  });

  it("a file the sidecar may not read is damaged evidence", () => {
    // A directory in the file's place: reading it fails with EISDIR.
    mkdirSync(join(dir, RUN_STATE_FILE));
    const previous = new RunStateFile(dir, "/proc", t0, process.pid).previous;
    assert.deepEqual(previous?.kind === "damaged" && previous.problem.startsWith("unreadable: EISDIR"), true, JSON.stringify(previous));
  });
});

describe("records/sensor-records: tamper evidence and heartbeat", () => {
  it("an unclean previous run is a WARN status with the blind interval and the PID count", () => {
    const r = previousRunRecord({ kind: "unclean", since: t0, until: t0 + 90_000, pidCount: 299 });
    assert.deepEqual([r.eventName, r.severity], ["microenforcer.sensor.status", "WARN"]);
    assert.deepEqual(r.attributes, {
      "microenforcer.status.cause": "previous-run-unclean",
      "microenforcer.blind.since": "2026-12-01T04:00:00.000Z",
      "microenforcer.blind.until": "2026-12-01T04:01:30.000Z",
      "microenforcer.blind.pid_count": 299,
    });
    assert.match(r.body, /nothing was watched for 90 s, while the pod handed out 299 PIDs/);
  });

  it("a stopped or damaged previous run is evidence too", () => {
    assert.equal(previousRunRecord({ kind: "stopped", since: t0, until: t0 + 1 }).attributes["microenforcer.status.cause"], "previous-run-stopped");
    const damaged = previousRunRecord({ kind: "damaged", problem: "not JSON", until: t0 });
    assert.deepEqual([damaged.severity, damaged.attributes["microenforcer.status.cause"]], ["WARN", "previous-run-unknown"]);
  });

  it("the heartbeat carries the counters a backend alerts on", () => {
    const r = heartbeatRecord({ processes: 3, connections: 2, gaps: 1, recordsEmitted: 9, recordsLost: 4 }, t0, 60, t0 + 60_000);
    assert.deepEqual([r.eventName, r.severity, r.timestamp], ["microenforcer.sensor.heartbeat", "INFO", t0 + 60_000]);
    assert.deepEqual(r.attributes, {
      "microenforcer.sensor.started": "2026-12-01T04:00:00.000Z",
      "microenforcer.heartbeat.interval_s": 60,
      "microenforcer.heartbeat.processes": 3,
      "microenforcer.heartbeat.connections": 2,
      "microenforcer.heartbeat.gaps": 1,
      "microenforcer.heartbeat.records_emitted": 9,
      "microenforcer.heartbeat.records_lost": 4,
    });
  });
});
