import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { ReportsFirst } from "../../microenforcer/pipeline/reports-first.ts";

describe("pipeline/reports-first: a report on its way goes before the poller's events", () => {
  it("hands events on at once when no report is on its way", () => {
    const handled: number[] = [];
    const gate = new ReportsFirst<number>((n) => handled.push(n));
    gate.offer(1, false);
    gate.offer(2, false);
    assert.deepEqual(handled, [1, 2]);
  });

  it("holds them while one is, in order, until it is in", () => {
    const handled: number[] = [];
    const gate = new ReportsFirst<number>((n) => handled.push(n), 1000);
    gate.offer(1, true);
    gate.offer(2, false);
    assert.deepEqual(handled, [], "a later batch waits behind an earlier one");
    gate.flush();
    assert.deepEqual(handled, [1, 2]);
    gate.offer(3, false);
    assert.deepEqual(handled, [1, 2, 3]);
  });

  it("holds them at most maxWaitMs from the first, however many reports keep coming", async () => {
    const handled: number[] = [];
    const gate = new ReportsFirst<number>((n) => handled.push(n), 20);
    gate.offer(1, true);
    for (let i = 2; i <= 5; i++) {
      await sleep(4);
      gate.offer(i, true);
    }
    await sleep(60);
    assert.deepEqual(handled, [1, 2, 3, 4, 5], "a process that keeps connections open cannot hold the poller back");
  });
});
