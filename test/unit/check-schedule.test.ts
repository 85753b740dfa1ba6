import assert from "node:assert/strict";
import { CheckSchedule } from "../../microenforcer/capture/check-schedule.ts";

describe("CheckSchedule", () => {
  it("hands out due checks earliest first and keeps the rest", () => {
    const schedule = new CheckSchedule();
    const times = [50, 10, 40, 10, 30, 20, 60, 5];
    times.forEach((at, pid) => schedule.push({ at, pid, startTicks: 0 }));
    assert.equal(schedule.peek(), 5);
    const due: number[] = [];
    for (let c = schedule.popDue(35); c !== undefined; c = schedule.popDue(35)) due.push(c.at);
    assert.deepEqual(due, [5, 10, 10, 20, 30]);
    assert.equal(schedule.size, 3);
    assert.equal(schedule.peek(), 40);
    assert.equal(schedule.popDue(39), undefined);
  });

  it("stays ordered under many random pushes and pops", () => {
    const schedule = new CheckSchedule();
    let last = -Infinity;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 40; i++) schedule.push({ at: last + Math.random() * 100, pid: i, startTicks: round });
      for (let i = 0; i < 30; i++) {
        const c = schedule.popDue(Infinity)!;
        assert.ok(c.at >= last, "never earlier than the previous pop");
        last = c.at;
      }
    }
    assert.equal(schedule.size, 50 * 10);
    assert.equal(new CheckSchedule().peek(), Infinity);
  });
});
