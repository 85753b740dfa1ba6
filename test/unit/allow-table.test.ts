import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AllowTable, allowTableHash, allowTableProbes, decodeAllowTable, encodeAllowTable, maxAllowEntries, type AllowEntry } from "../../microenforcer/capture/allow-table.ts";

const entry = (i: number, path = `/usr/bin/tool-${i}`): AllowEntry => ({ major: 0, minor: 40 + (i % 3), inode: 1_000_000n + BigInt(i), ctimeNs: 1_700_000_000_123_456_789n + BigInt(i), path: Buffer.from(path) });

/** The library's lookup (preload/exec-report.c standing_allow), over the encoded bytes. */
function lookup(buf: Buffer, generation: number, e: AllowEntry): boolean {
  if (buf.readUInt32LE(8) !== generation) return false;
  const capacity = buf.readUInt32LE(12);
  const home = allowTableHash(e.inode, e.major, e.minor) & (capacity - 1);
  for (let i = home; i < home + allowTableProbes; i++) {
    const at = 24 + i * 40;
    if (buf.readUInt16LE(at + 34) !== 1 || buf.readBigUInt64LE(at) !== e.inode || buf.readUInt32LE(at + 16) !== e.major || buf.readUInt32LE(at + 20) !== e.minor) continue;
    const ctime = buf.readBigInt64LE(at + 8) * 1_000_000_000n + BigInt(buf.readUInt32LE(at + 24));
    const offset = buf.readUInt32LE(at + 28);
    if (ctime === e.ctimeNs && buf.subarray(offset, offset + buf.readUInt16LE(at + 32)).equals(e.path)) return true;
  }
  return false;
}

describe("capture/allow-table: the file the preload library reads to go on without waiting", () => {
  it("round-trips entries and finds each within the slots the library reads", () => {
    const entries = Array.from({ length: 300 }, (_, i) => entry(i));
    const buf = encodeAllowTable(9, entries);
    const decoded = decodeAllowTable(buf)!;
    assert.equal(decoded.generation, 9);
    assert.equal(decoded.entries.length, 300);
    for (const e of entries) assert.ok(lookup(buf, 9, e), `entry ${e.path.toString()}`);
    assert.ok(!lookup(buf, 9, { ...entries[0]!, ctimeNs: entries[0]!.ctimeNs + 1n }), "a nanosecond later is another file");
    assert.ok(!lookup(buf, 9, { ...entries[0]!, path: Buffer.from("/tmp/tool-0") }), "another path to the same file");
    assert.ok(!lookup(buf, 10, entries[0]!), "another generation");
  });

  it("hashes as the library does (FNV-1a over inode, major, minor)", () => {
    // Computed by hand: FNV-1a 32 of 16 zero bytes.
    let h = 0x811c9dc5;
    for (let i = 0; i < 16; i++) h = Math.imul(h, 0x01000193) >>> 0;
    assert.equal(allowTableHash(0n, 0, 0), h);
    assert.notEqual(allowTableHash(1n, 0, 0), allowTableHash(0n, 0, 1));
  });

  it("keeps at most its bound, and leaves out what cannot be looked up", () => {
    const many = Array.from({ length: maxAllowEntries + 10 }, (_, i) => entry(i));
    const decoded = decodeAllowTable(encodeAllowTable(1, many))!;
    assert.ok(decoded.entries.length <= maxAllowEntries && decoded.entries.length > maxAllowEntries * 0.95, `${decoded.entries.length} kept`);
    const odd = decodeAllowTable(encodeAllowTable(1, [entry(1, ""), entry(2, "/x".repeat(3000))]))!;
    assert.equal(odd.entries.length, 0, "an empty path, or one longer than the library reads");
    assert.equal(decodeAllowTable(Buffer.from("MEXA")), undefined);
  });

  it("starts each generation empty at once, and writes new entries together a moment later", async () => {
    const dir = mkdtempSync(join(tmpdir(), "allow-table-"));
    const errors: Error[] = [];
    try {
      const table = new AllowTable(join(dir, "exec.sock"), (e) => errors.push(e), 5);
      const read = () => decodeAllowTable(readFileSync(join(dir, "allowed")))!;
      table.reset(3);
      assert.deepEqual(read(), { generation: 3, entries: [] });
      assert.ok(table.add(entry(1)) && table.add(entry(2)) && table.add(entry(1)));
      assert.ok(table.holds(entry(1)) && !table.holds(entry(3)) && !table.holds(entry(1, "/tmp/other-name")), "what it made, by identity and path");
      assert.equal(read().entries.length, 0, "not yet written");
      // A 5 ms timer: on a busy machine (CI's other tiers on both cores) it can fire 30 ms late.
      for (const until = Date.now() + 2000; read().entries.length === 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
      assert.equal(read().entries.length, 2);
      table.reset(4);
      assert.deepEqual(read(), { generation: 4, entries: [] }, "a new policy: nothing found allowed before holds");
      assert.ok(!table.holds(entry(1)));
      table.add(entry(5));
      table.close();
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(read().entries.length, 0, "closed: nothing more written");
      assert.equal(table.add(entry(6)), false);
      const full = new AllowTable(join(dir, "exec.sock"), (e) => errors.push(e), 5);
      full.reset(5);
      for (let i = 0; i < maxAllowEntries; i++) assert.ok(full.add(entry(i)));
      assert.equal(full.add(entry(maxAllowEntries)), false, "full: the caller says so once");
      assert.ok(full.add(entry(0)), "what it holds it still holds");
      full.close();
      assert.deepEqual(errors, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
