/**
 * The gap counter: PIDs gone before the sensor read them, which of them waited behind a
 * burst, and the preload library's reports that take a PID out of the gap.
 */
import assert from "node:assert/strict";
import { GapCounter } from "../../microenforcer/capture/gap-counter.ts";

describe("GapCounter", () => {
  it("counts the late PIDs of a window with the burst's peak, takes a reported one out, and starts the next window from zero", () => {
    const gaps = new GapCounter();
    gaps.start(0);
    gaps.missed(20);
    gaps.waiting(300);
    gaps.waiting(120);
    gaps.missed(21, true);
    gaps.missed(22, true);
    gaps.reported(22);
    assert.deepEqual(gaps.take(10_000, 0), [{ type: "gap", kind: "pid", count: 2, firstPid: 20, lastPid: 22, since: 0, until: 10_000, late: 1, backlogPeak: 300 }]);
    gaps.missed(30);
    assert.deepEqual(gaps.take(20_000, 0), [{ type: "gap", kind: "pid", count: 1, firstPid: 30, lastPid: 30, since: 10_000, until: 20_000 }]);
  });
});
