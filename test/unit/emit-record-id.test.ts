import assert from "node:assert/strict";
import { RecordIds } from "../../microenforcer/emit/record-id.ts";

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

describe("emit/record-id", () => {
  it("makes ULIDs whose first 10 characters are the millisecond", () => {
    const id = new RecordIds(() => Date.parse("2026-03-01T12:00:00.123Z")).next();
    assert.match(id, ULID);
    // 2026-03-01T12:00:00.123Z in ms, in Crockford base32 (computed independently).
    assert.equal(id.slice(0, 10), "01KJMMA2KV");
  });

  it("is unique and sorts in emit order within one millisecond, and when the clock steps back", () => {
    let now = 1_000_000;
    const ids = new RecordIds(() => now);
    const made: string[] = [];
    for (let i = 0; i < 5000; i++) {
      if (i === 2000) now += 1;
      if (i === 3000) now -= 500; // NTP step backwards
      made.push(ids.next());
    }
    assert.equal(new Set(made).size, made.length);
    assert.deepEqual([...made].sort(), made);
  });

  it("carries into the next millisecond when the random part overflows", () => {
    const ids = new RecordIds(
      () => 0,
      (bytes) => bytes.fill(31),
    );
    const first = ids.next();
    assert.equal(first, "0000000000ZZZZZZZZZZZZZZZZ");
    const second = ids.next();
    assert.ok(second > first);
    assert.equal(second.slice(0, 10), "0000000001");
  });

  it("gives two sidecars different ids in the same millisecond", () => {
    const a = new RecordIds(() => 42).next();
    const b = new RecordIds(() => 42).next();
    assert.notEqual(a, b);
  });
});
