import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AllowTable, allowTableHash, allowTableProbes, decodeAllowTable, encodeAllowTable, maxAllowEntries, runsInlineCode, runsPlainCommand, type AllowEntry } from "../../microenforcer/capture/allow-table.ts";
import { inlineCodeOption, scriptNamedBy } from "../../microenforcer/proc/script-argv.ts";

const entry = (i: number, path = `/usr/bin/tool-${i}`): AllowEntry => ({ major: 0, minor: 40 + (i % 3), inode: 1_000_000n + BigInt(i), ctimeNs: 1_700_000_000_123_456_789n + BigInt(i), path: Buffer.from(path) });

/** The library's lookup (preload/exec-report.c standing_allow), over the encoded bytes: the slot's kind, 0 when none. */
function lookup(buf: Buffer, generation: number, e: AllowEntry): number {
  if (buf.readUInt32LE(8) !== generation) return 0;
  const capacity = buf.readUInt32LE(12);
  const home = allowTableHash(e.inode, e.major, e.minor) & (capacity - 1);
  for (let i = home; i < home + allowTableProbes; i++) {
    const at = 24 + i * 40;
    const kind = buf.readUInt16LE(at + 34);
    if ((kind !== 1 && kind !== 2 && kind !== 3) || buf.readBigUInt64LE(at) !== e.inode || buf.readUInt32LE(at + 16) !== e.major || buf.readUInt32LE(at + 20) !== e.minor) continue;
    const ctime = buf.readBigInt64LE(at + 8) * 1_000_000_000n + BigInt(buf.readUInt32LE(at + 24));
    const offset = buf.readUInt32LE(at + 28);
    if (ctime === e.ctimeNs && buf.subarray(offset, offset + buf.readUInt16LE(at + 32)).equals(e.path)) return kind;
  }
  return 0;
}

const argv = (...words: string[]) => ({ rawArgs: Buffer.from(`${words.join("\0")}\0`), truncated: { exe: false, cmdline: false }, ppid: 1 });

describe("capture/allow-table: the file the preload library reads to go on without waiting", () => {
  it("round-trips entries and finds each within the slots the library reads", () => {
    const entries = Array.from({ length: 300 }, (_, i) => entry(i));
    const buf = encodeAllowTable(9, entries);
    const decoded = decodeAllowTable(buf)!;
    assert.equal(decoded.generation, 9);
    assert.equal(decoded.entries.length, 300);
    for (const e of entries) assert.equal(lookup(buf, 9, e), 1, `entry ${e.path.toString()}`);
    assert.ok(!lookup(buf, 9, { ...entries[0]!, ctimeNs: entries[0]!.ctimeNs + 1n }), "a nanosecond later is another file");
    assert.ok(!lookup(buf, 9, { ...entries[0]!, path: Buffer.from("/tmp/tool-0") }), "another path to the same file");
    assert.ok(!lookup(buf, 10, entries[0]!), "another generation");
    const shell: AllowEntry = { ...entry(400, "/usr/bin/dash"), runs: "command" };
    const withShell = encodeAllowTable(9, [entries[0]!, shell]);
    assert.deepEqual([lookup(withShell, 9, entries[0]!), lookup(withShell, 9, shell)], [1, 2], "a shell's entry lets it go on only as a plain command");
    assert.deepEqual(new Set(decodeAllowTable(withShell)!.entries.map((e) => e.runs)), new Set([undefined, "command"]), "round-trips");
    const python: AllowEntry = { ...entry(401, "/usr/bin/python3.11"), runs: { inline: "-c" } };
    const withPython = encodeAllowTable(9, [python]);
    assert.equal(lookup(withPython, 9, python), 3, "an interpreter's entry lets it go on only for its inline code");
    const slot = withPython.indexOf(Buffer.from([3, 0, 0x2d, 0x63, 0, 0]), 24);
    assert.ok(slot > 0 && (slot - 24 - 34) % 40 === 0, "its option after the kind, NUL-padded, for the library to compare argv[1] with");
    assert.deepEqual(decodeAllowTable(withPython)!.entries[0]!.runs, { inline: "-c" }, "round-trips");
    assert.equal(decodeAllowTable(encodeAllowTable(9, [{ ...python, runs: { inline: "--eval" } }]))!.entries.length, 0, "an option longer than the slot holds: left out (asked)");
  });

  it("lets an interpreter's entry stand only for `INTERPRETER OPTION ...` with its inline-code option first", () => {
    for (const [name, option] of [["python3.11", "-c"], ["perl", "-e"], ["ruby3.1", "-e"], ["node", "-e"], ["php8.2", "-r"]] as const) {
      assert.equal(inlineCodeOption(name), option, name);
      const run = argv(name, option, "code", "/tmp/evil.script");
      assert.ok(runsInlineCode(run, option), `${name} ${option}`);
      assert.equal(scriptNamedBy(name, run.rawArgs.toString("latin1").split("\0").slice(0, -1)), undefined, `${name} ${option}: the sidecar names no script either`);
      assert.ok(!runsInlineCode(argv(name, "/tmp/evil.script"), option), `${name} FILE: a script`);
      assert.ok(!runsInlineCode(argv(name, "-W", option, "code"), option), `${name}: another option first: asked`);
      assert.ok(!runsInlineCode(argv(name), option), `${name}: code from stdin`);
    }
    for (const name of ["dash", "bash", "lua5.4", "awk", "busybox", "curl"]) assert.equal(inlineCodeOption(name), undefined, `${name}: no inline-code option that runs no file`);
  });

  it("lets a shell's entry stand only for `SHELL -c COMMAND` naming no file it runs", () => {
    const plain = ["ls -la", "cat /etc/passwd | head -1", "exec nginx -g 'daemon off;'", "echo $HOME/x", "id"];
    for (const command of plain) {
      assert.ok(runsPlainCommand(argv("sh", "-c", command)), command);
      assert.equal(scriptNamedBy("sh", ["sh", "-c", command]), undefined, `${command}: the sidecar names no script either`);
    }
    const script = ["/tmp/x.sh", "./run.sh arg", ". /etc/profile", "source /tmp/evil", "/usr/bin/env"];
    for (const command of script) assert.ok(!runsPlainCommand(argv("sh", "-c", command)), command);
    assert.ok(!runsPlainCommand(argv("sh", "script.sh")), "a script");
    assert.ok(!runsPlainCommand(argv("sh")), "commands from stdin");
    assert.ok(!runsPlainCommand(argv("sh", "-ec", "ls")), "options besides -c: asked");
    assert.ok(!runsPlainCommand(argv("sh", "-c")), "no command");
    assert.ok(!runsPlainCommand({ rawArgs: Buffer.from("sh\0-c\0ls"), truncated: { exe: false, cmdline: false } }), "its command cut short");
    assert.ok(!runsPlainCommand({ ...argv("sh", "-c", "ls"), truncated: { exe: false, cmdline: true } }), "argv cut");
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
      const run = argv("tool");
      assert.ok(table.holds(entry(1), run) && !table.holds(entry(3), run) && !table.holds(entry(1, "/tmp/other-name"), run), "what it made, by identity and path");
      table.add({ ...entry(7, "/bin/dash"), runs: "command" });
      assert.ok(table.holds(entry(7, "/bin/dash"), argv("dash", "-c", "ls")) && !table.holds(entry(7, "/bin/dash"), argv("dash", "/tmp/x.sh")), "a shell's, for a plain command only");
      table.add({ ...entry(8, "/usr/bin/perl"), runs: { inline: "-e" } });
      assert.ok(table.holds(entry(8, "/usr/bin/perl"), argv("perl", "-e", "print 1")) && !table.holds(entry(8, "/usr/bin/perl"), argv("perl", "/tmp/x.pl")), "an interpreter's, for its inline code only");
      assert.ok(!table.holds(entry(1), { ...run, ppid: 0 }), "a process whose parent is outside the PID namespace (an exec session's first) always asks: no entry speaks for it");
      assert.equal(read().entries.length, 0, "not yet written");
      // A 5 ms timer: on a busy machine (CI's other tiers on both cores) it can fire 30 ms late.
      for (const until = Date.now() + 2000; read().entries.length === 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 5));
      assert.equal(read().entries.length, 4);
      table.reset(4);
      assert.deepEqual(read(), { generation: 4, entries: [] }, "a new policy: nothing found allowed before holds");
      assert.ok(!table.holds(entry(1), argv("tool")));
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
