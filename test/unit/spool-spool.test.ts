import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { decodeHeader, decodeLine, decodeRecord, encodeHeader, encodeLine, encodeRecord } from "../../microenforcer/spool/line-codec.ts";
import { decodeCursor, encodeCursor, parseSegmentName, recoveryPlan, segmentName } from "../../microenforcer/spool/segments.ts";
import { Spool } from "../../microenforcer/spool/spool.ts";
import { logRecord } from "./emit-fixtures.ts";

const numbered = (n: number) => logRecord({ attributes: { seq: n, "process.command_args": ["sh", "-c", `echo ${n}`] } });
const seqs = (records: Array<{ attributes: Record<string, unknown> }>) => records.map((r) => r.attributes.seq);
const segmentFiles = (dir: string) => readdirSync(dir).filter((name) => name.endsWith(".seg")).sort();

describe("spool/line-codec", () => {
  it("round-trips a record through one checksummed line, resource and scope from the header", () => {
    const record = logRecord({ attributes: { "process.pid": 7, "process.command_args": ["a", "b\nc"], "microenforcer.exec.in_place": true, ratio: 0.5 }, body: "é\u0000" });
    const line = encodeRecord(record).toString();
    assert.equal(line.indexOf("\n"), line.length - 1, "one line, newlines in values escaped");
    const header = decodeHeader(encodeHeader(record).toString().trimEnd());
    assert.ok(header);
    assert.deepEqual(header.resource.attributes, record.resource.attributes);
    assert.deepEqual(decodeRecord(line.trimEnd(), header), { ...record, resource: header.resource, instrumentationScope: header.scope });
  });

  it("refuses a line whose checksum or JSON does not match", () => {
    const line = encodeLine({ a: 1 }).toString().trimEnd();
    assert.deepEqual(decodeLine(line), { a: 1 });
    assert.equal(decodeLine(line.replace('"a"', '"b"')), undefined);
    assert.equal(decodeLine(line.slice(0, -1)), undefined, "torn");
    assert.equal(decodeLine(""), undefined);
    assert.equal(decodeRecord(encodeLine({ t: "x" }).toString().trimEnd(), { resource: resourceFromAttributes({}), scope: { name: "s" } }), undefined, "not a record");
  });
});

describe("spool/segments", () => {
  it("names segments so that they sort by number", () => {
    assert.equal(segmentName(42), "0000000000000042.seg");
    assert.equal(parseSegmentName("0000000000000042.seg"), 42);
    assert.equal(parseSegmentName("cursor"), undefined);
    assert.equal(parseSegmentName("42.seg"), undefined);
  });

  it("encodes the cursor with a checksum; a torn or damaged cursor reads as none", () => {
    const bytes = encodeCursor({ segment: 3, offset: 1234 });
    assert.equal(bytes.length, 48);
    assert.deepEqual(decodeCursor(bytes), { segment: 3, offset: 1234 });
    assert.equal(decodeCursor(bytes.subarray(0, 20)), undefined);
    const damaged = Buffer.from(bytes);
    damaged[20] = 0x39;
    assert.equal(decodeCursor(damaged), undefined);
    assert.equal(decodeCursor(Buffer.alloc(0)), undefined);
  });

  it("plans recovery: segments below the cursor are consumed, reading resumes at the cursor", () => {
    assert.deepEqual(recoveryPlan([5, 3, 4], { segment: 4, offset: 100 }), { remove: [3], keep: [4, 5], start: { segment: 4, offset: 100 }, nextSegment: 6 });
    assert.deepEqual(recoveryPlan([3, 4], undefined), { remove: [], keep: [3, 4], start: { segment: 3, offset: 0 }, nextSegment: 5 });
    // The cursor's segment was drained and unlinked; later ones are read from their start.
    assert.deepEqual(recoveryPlan([7], { segment: 6, offset: 900 }), { remove: [], keep: [7], start: { segment: 7, offset: 0 }, nextSegment: 8 });
    // Nothing left: new segments are numbered past the cursor so they are never taken for consumed ones.
    assert.deepEqual(recoveryPlan([], { segment: 9, offset: 10 }), { remove: [], keep: [], start: { segment: 9, offset: 0 }, nextSegment: 10 });
  });
});

describe("spool/spool", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "spool-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("keeps order across segments, and removes each segment once acknowledged", async () => {
    const spool = new Spool({ dir, maxBytes: 1 << 20, segmentBytes: 4096 });
    for (let i = 0; i < 100; i++) assert.equal(spool.append(numbered(i), false), undefined);
    assert.equal(spool.size, 100);
    assert.ok(segmentFiles(dir).length > 3, "rotated");
    const seen: unknown[] = [];
    while (!spool.isEmpty()) {
      const { records, end, corrupt } = spool.read(7);
      assert.equal(corrupt, 0);
      seen.push(...seqs(records));
      spool.ack(end);
    }
    assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
    assert.equal(spool.size, 0);
    assert.deepEqual(segmentFiles(dir), [], "drained: nothing left on disk");
    assert.equal(spool.bytes, 0);
    await spool.close();
  });

  it("reads the same batch again until it is acknowledged", async () => {
    const spool = new Spool({ dir, maxBytes: 1 << 20 });
    for (let i = 0; i < 5; i++) spool.append(numbered(i), false);
    assert.deepEqual(seqs(spool.read(3).records), [0, 1, 2]);
    assert.deepEqual(seqs(spool.read(3).records), [0, 1, 2]);
    spool.ack(spool.read(3).end);
    assert.deepEqual(seqs(spool.read(3).records), [3, 4]);
    await spool.close();
  });

  it("after a restart, replays only what was not acknowledged, in order, then new records", async () => {
    const first = new Spool({ dir, maxBytes: 1 << 20, segmentBytes: 2048 });
    for (let i = 0; i < 40; i++) first.append(numbered(i), false);
    first.ack(first.read(15).end);
    // No close(): a SIGKILL does not close anything.
    const second = new Spool({ dir, maxBytes: 1 << 20, segmentBytes: 2048 });
    assert.deepEqual(second.recovered, { records: 25, torn: 0 });
    for (let i = 40; i < 45; i++) second.append(numbered(i), false);
    const { records } = second.read(100);
    assert.deepEqual(seqs(records), Array.from({ length: 30 }, (_, i) => i + 15));
    assert.deepEqual(records[0]?.resource.attributes, numbered(0).resource.attributes, "resource from the segment header");
    await first.close();
    await second.close();
  });

  it("cuts off a torn last line at start and counts it", async () => {
    const first = new Spool({ dir, maxBytes: 1 << 20 });
    for (let i = 0; i < 3; i++) first.append(numbered(i), false);
    await first.close();
    const [segment] = segmentFiles(dir);
    const whole = readFileSync(join(dir, segment!));
    appendFileSync(join(dir, segment!), encodeRecord(numbered(3)).subarray(0, 30)); // the crash came mid-write
    const second = new Spool({ dir, maxBytes: 1 << 20 });
    assert.deepEqual(second.recovered, { records: 3, torn: 1 });
    assert.deepEqual(readFileSync(join(dir, segment!)), whole, "truncated back to whole lines");
    assert.deepEqual(seqs(second.read(10).records), [0, 1, 2]);
    await second.close();
  });

  it("skips and counts a damaged line in the middle", async () => {
    const spool = new Spool({ dir, maxBytes: 1 << 20 });
    for (let i = 0; i < 3; i++) spool.append(numbered(i), false);
    await spool.close();
    const [segment] = segmentFiles(dir);
    const text = readFileSync(join(dir, segment!), "utf8");
    writeFileSync(join(dir, segment!), text.replace("echo 1", "echo 9"));
    const reopened = new Spool({ dir, maxBytes: 1 << 20 });
    const { records, corrupt } = reopened.read(10);
    assert.deepEqual(seqs(records), [0, 2]);
    assert.equal(corrupt, 1);
    await reopened.close();
  });

  it("refuses new records at its cap, but takes forced ones (memory moving out, loss reports)", async () => {
    const spool = new Spool({ dir, maxBytes: 64 << 10, segmentBytes: 64 << 10 });
    let stored = 0;
    let refusal;
    for (let i = 0; i < 10_000 && refusal === undefined; i++) {
      refusal = spool.append(numbered(i), false);
      if (refusal === undefined) stored++;
    }
    assert.deepEqual(refusal, { reason: "spool_full", detail: "cap 65536 bytes" });
    assert.ok(spool.bytes <= 64 << 10);
    assert.equal(spool.append(numbered(-1), true), undefined);
    assert.equal(spool.size, stored + 1);
    await spool.close();
  });

  it("throws when the directory cannot be used, so the emitter can fall back to memory", () => {
    writeFileSync(join(dir, "file"), "");
    assert.throws(() => new Spool({ dir: join(dir, "file", "spool"), maxBytes: 1 << 20 }), /ENOTDIR/);
  });
});
