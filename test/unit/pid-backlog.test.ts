/**
 * The backlog of PIDs handed out and not read yet: the order the loop reads them in (newest
 * tick first, ascending within one), a parent taken out of turn, and its bound in a long burst.
 */
import assert from "node:assert/strict";
import { PidBacklog } from "../../microenforcer/capture/pid-backlog.ts";

const drain = (backlog: PidBacklog): number[] => {
  const pids: number[] = [];
  for (let next = backlog.take(); next !== undefined; next = backlog.take()) pids.push(next.pid);
  return pids;
};

describe("PidBacklog", () => {
  it("gives the newest tick's PIDs first, each tick's in the order handed out, across a wrap", () => {
    const backlog = new PidBacklog();
    backlog.add([{ first: 11, last: 13 }], 1);
    backlog.add([{ first: 32766, last: 32767 }, { first: 300, last: 301 }], 2);
    assert.deepEqual(backlog.take(), { pid: 300, at: 2 });
    assert.deepEqual(drain(backlog), [301, 32766, 32767, 11, 12, 13]);
    assert.equal(backlog.empty, true);
  });

  it("takes a PID out of turn and keeps the order of the rest", () => {
    const backlog = new PidBacklog();
    backlog.add([{ first: 11, last: 15 }], 1);
    backlog.add([{ first: 16, last: 16 }], 2);
    assert.equal(backlog.size, 6);
    assert.equal(backlog.remove(13), 1);
    assert.equal(backlog.remove(13), undefined, "taken already");
    assert.equal(backlog.remove(11), 1);
    assert.equal(backlog.size, 4);
    assert.equal(backlog.has(12), true);
    assert.equal(backlog.has(13), false);
    assert.deepEqual(drain(backlog), [16, 12, 14, 15]);
    assert.equal(backlog.size, 0);
  });

  it("gives, oldest first, the PIDs handed out before a time, and leaves the newer", () => {
    const backlog = new PidBacklog();
    backlog.add([{ first: 11, last: 12 }], 1);
    backlog.add([{ first: 13, last: 14 }], 2);
    backlog.add([{ first: 15, last: 15 }], 3);
    assert.deepEqual([...backlog.takeHandedOutBefore(3)].map((p) => p.pid), [11, 12, 13, 14]);
    assert.equal(backlog.size, 1);
    assert.deepEqual(drain(backlog), [15]);
  });

  it("gives every PID of thousands of ticks once, newest first, with their ranges joined to stay few", () => {
    const backlog = new PidBacklog();
    for (let tick = 0; tick < 5000; tick++) backlog.add([{ first: 1000 + 2 * tick, last: 1001 + 2 * tick }], tick);
    backlog.remove(1500);
    const pids = drain(backlog);
    assert.equal(pids.length, 9999);
    assert.equal(new Set(pids).size, 9999);
    assert.equal(pids.includes(1500), false);
    assert.deepEqual(pids.slice(0, 2), [10998, 10999], "the newest still first");
  });
});
