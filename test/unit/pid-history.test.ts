/**
 * The PID history a report of a gone process is held against: which claims a real process
 * could make (its PID handed out around its start, or alive when the sensor started), which
 * none could, and where the history cannot tell.
 */
import assert from "node:assert/strict";
import { PidHistory } from "../../microenforcer/capture/pid-history.ts";

/** Start ticks are 10 ms; with boot at 0 a claim of N ticks is N * 10 ms. */
const clock = { bootMs: 0, ticksPerSecond: 100 };
const ticks = (ms: number): number => ms / 10;

describe("PidHistory", () => {
  it("knows nothing before the trigger's first read (no ns_last_pid: no history)", () => {
    assert.deepEqual(new PidHistory(16).judge(42, ticks(1000), clock, 50), { kind: "unknown" });
  });

  it("takes a claim whose PID the namespace handed out around its start, and refuses one it did not", () => {
    const h = new PidHistory(16);
    h.begin(100, 1000);
    h.handedOut(100, 110, 1000, 2000);
    h.handedOut(110, 111, 2000, 3000);
    assert.equal(h.judge(105, ticks(1500), clock, 111).kind, "handed-out");
    assert.equal(h.judge(111, ticks(2500), clock, 111).kind, "handed-out");
    // The right PID, started long after it was handed out: some other process's, or none.
    const late = h.judge(105, ticks(2800), clock, 111);
    assert.equal(late.kind, "not-handed-out");
    assert.match(late.kind === "not-handed-out" ? late.detail : "", /did not hand pid 105 out around the claimed start/);
    // A PID never handed out yet.
    assert.equal(h.judge(500, ticks(2500), clock, 111).kind, "not-handed-out");
    // Within the slack of a window's edges: start ticks are 10 ms, the boot time read to 10 ms.
    assert.equal(h.judge(105, ticks(2040), clock, 111).kind, "handed-out");
    assert.equal(h.judge(111, ticks(1960), clock, 111).kind, "handed-out");
  });

  it("takes a process alive when the sensor started by its exact pid and start, and refuses any other claim to predate it", () => {
    const h = new PidHistory(16);
    h.begin(100, 1000);
    h.alive(1, ticks(10));
    h.alive(57, ticks(700));
    h.handedOut(100, 101, 1000, 1500);
    assert.equal(h.judge(57, ticks(700), clock, 101).kind, "handed-out");
    const other = h.judge(57, ticks(600), clock, 101);
    assert.equal(other.kind, "not-handed-out");
    assert.match(other.kind === "not-handed-out" ? other.detail : "", /no process 57 started then was alive when the sensor started/);
    assert.equal(h.judge(58, ticks(700), clock, 101).kind, "not-handed-out");
  });

  it("takes a PID handed out since the worker's last read, by ns_last_pid read now", () => {
    const h = new PidHistory(16);
    h.begin(100, 1000);
    h.handedOut(100, 105, 1000, 2000);
    assert.equal(h.judge(107, ticks(2500), clock, 108).kind, "handed-out");
    assert.equal(h.judge(109, ticks(2500), clock, 108).kind, "not-handed-out");
    // Handed out after the last read: it cannot have started before it.
    assert.equal(h.judge(107, ticks(1200), clock, 108).kind, "not-handed-out");
    assert.equal(h.judge(107, ticks(2500), clock, undefined).kind, "not-handed-out");
  });

  it("follows PIDs across a wrap at pid_max", () => {
    const h = new PidHistory(16);
    h.begin(32_760, 1000);
    h.handedOut(32_760, 305, 1000, 2000);
    assert.equal(h.judge(32_765, ticks(1500), clock, 305).kind, "handed-out");
    assert.equal(h.judge(301, ticks(1500), clock, 305).kind, "handed-out");
    assert.equal(h.judge(1000, ticks(1500), clock, 305).kind, "not-handed-out");
  });

  it("cannot tell for the time ns_last_pid was set back, nor for claims older than a full ring keeps", () => {
    const set = new PidHistory(16);
    set.begin(100, 1000);
    set.lost(50, 1000, 2000);
    set.handedOut(50, 60, 2000, 3000);
    assert.equal(set.judge(900, ticks(1500), clock, 60).kind, "unknown");
    assert.equal(set.judge(55, ticks(2500), clock, 60).kind, "handed-out");
    assert.equal(set.judge(900, ticks(2500), clock, 60).kind, "not-handed-out");

    const full = new PidHistory(4);
    full.begin(100, 1000);
    for (let i = 0; i < 10; i++) full.handedOut(100 + i, 101 + i, 2000 + i * 1000, 3000 + i * 1000);
    // Kept: the last four windows, from 8000 ms on.
    assert.equal(full.judge(103, ticks(4500), clock, 110).kind, "unknown", "older than the ring keeps");
    assert.equal(full.judge(110, ticks(11_500), clock, 110).kind, "handed-out");
    assert.equal(full.judge(103, ticks(11_500), clock, 110).kind, "not-handed-out");
  });

  it("is read from the buffer another thread writes", () => {
    const writer = new PidHistory(16);
    const reader = new PidHistory(writer.buffer);
    writer.begin(100, 1000);
    assert.equal(reader.judge(101, ticks(1500), clock, 100).kind, "not-handed-out");
    writer.handedOut(100, 101, 1000, 2000);
    assert.equal(reader.judge(101, ticks(1500), clock, 101).kind, "handed-out");
  });
});
