/**
 * The allow table: executables the sidecar found allowed however they are run, which the
 * preload library then lets go on without waiting for a verdict (enforce mode's cost drops to
 * audit's for programs the pod runs again and again). The file `allowed` lives beside the
 * socket, in the volume the app containers mount read-only; the format is in
 * preload/README.md, the reader is preload/exec-report.c. This module encodes the file and
 * keeps it: pure encoding, atomic writes (a temporary file renamed over the table).
 *
 * An entry names a file by its identity — device, inode, and ctime to the nanosecond, which
 * only the kernel sets and any write, chmod, link or unlink moves — and the path it was run
 * by, so a changed file, or the same file under another name, is asked about again.
 */
import { renameSync, writeFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { shellSyntax } from "../proc/script-argv.ts";
import type { ExeKey, ExecReport } from "./exec-report.ts";

export const allowTableMagic = "MEXA";
export const allowTableVersion = 1;
const headerBytes = 24;
const slotBytes = 40;
/** Slots the library reads from an entry's home slot on: an entry lives within them. */
export const allowTableProbes = 8;
const minCapacity = 64;
/** Entries at most (a file of ~330 KiB; the library reads ~350 bytes of it per exec). */
export const maxAllowEntries = 4096;
const maxCapacity = 8192;
/** The library's MAX_EXE: a longer path is never looked up. */
const maxPathBytes = 4095;

/** A file by its identity, and the path it was run by: the exe link's target, byte for byte as readlink gives it to the library. */
export interface AllowEntry extends ExeKey {
  path: Buffer;
  /** Which runs it lets go on; absent: however it runs. */
  runs?: CoveredRuns;
}

/**
 * The runs an entry lets go on, when not all: `command`, a shell's, only as `SHELL -c COMMAND`
 * naming no file (runsPlainCommand); `{ inline }`, an interpreter's (python, perl, ruby, node,
 * php), only as `INTERPRETER OPTION ...` with its inline-code option first (runsInlineCode).
 * The library lets either go on only with no network socket on its stdio: then no script and
 * no reverse shell is in question.
 */
export type CoveredRuns = "command" | { inline: string };

/** The slot's kind: how the entry lets the program go on (RUNS_* in exec-report.c). */
const runsAny = 1;
const runsCommand = 2;
const runsInline = 3;
/** An inline-code option (`-c`, `-e`, `-r`) fits the slot's 4 bytes after its kind, NUL-padded. */
const maxOptionBytes = 4;

/** A report's raw argv split at its NULs: a word after the last one (empty when argv ends with its NUL). */
const argWords = (run: Pick<ExecReport, "rawArgs">): string[] => run.rawArgs.toString("latin1").split("\0");

/**
 * Whether a run is `SHELL -c COMMAND ...` with a command that names no file the shell runs
 * (script-argv.ts commandScript: shell syntax, or no `/` at all), its argv read whole. The
 * library's runs_plain_command, but for stdio, which it checks in the process itself.
 */
export function runsPlainCommand(run: Pick<ExecReport, "rawArgs" | "truncated">): boolean {
  // argv[0], -c, the command, and what follows its NUL.
  const words = argWords(run);
  const command = words[2];
  return !run.truncated.cmdline && words.length >= 4 && words[1] === "-c" && command !== undefined && (shellSyntax.test(command) || !command.includes("/"));
}

/**
 * Whether a run is `INTERPRETER OPTION ...` with `option` (its inline-code option,
 * script-argv.ts inlineCodeOption) as its first argument, read whole. The library's
 * runs_inline_code, but for stdio, which it checks in the process itself.
 */
export function runsInlineCode(run: Pick<ExecReport, "rawArgs">, option: string): boolean {
  // argv[0], the option, and what follows its NUL.
  const words = argWords(run);
  return words.length >= 3 && words[1] === option;
}

/** FNV-1a (32 bits) over the inode (8 bytes), major and minor (4 each), little-endian: the library's table_hash. */
export function allowTableHash(inode: bigint, major: number, minor: number): number {
  const key = Buffer.alloc(16);
  key.writeBigUInt64LE(inode, 0);
  key.writeUInt32LE(major, 8);
  key.writeUInt32LE(minor, 12);
  let h = 0x811c9dc5;
  for (const byte of key) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

/** The slots of a table of `capacity` home slots, each entry within allowTableProbes of its home, and how many fit nowhere. */
function place(entries: readonly AllowEntry[], capacity: number): { slots: Array<AllowEntry | undefined>; left: number } {
  const slots = new Array<AllowEntry | undefined>(capacity + allowTableProbes - 1).fill(undefined);
  let left = 0;
  for (const e of entries) {
    const home = allowTableHash(e.inode, e.major, e.minor) & (capacity - 1);
    let free = home;
    while (free < home + allowTableProbes && slots[free] !== undefined) free++;
    if (free === home + allowTableProbes) left++;
    else slots[free] = e;
  }
  return { slots, left };
}

/**
 * The table file for `generation` (which the mode file names: a table of another generation
 * is ignored). Entries that fit nowhere in the largest table are left out (they are asked about).
 */
export function encodeAllowTable(generation: number, entries: readonly AllowEntry[]): Buffer {
  const fits = (e: AllowEntry): boolean => typeof e.runs !== "object" || (e.runs.inline.length > 0 && Buffer.byteLength(e.runs.inline, "latin1") <= maxOptionBytes);
  const kept = entries.filter((e) => e.path.length > 0 && e.path.length <= maxPathBytes && fits(e)).slice(0, maxAllowEntries);
  let capacity = minCapacity;
  while (capacity < kept.length * 2) capacity *= 2;
  let { slots, left } = place(kept, capacity);
  while (left > 0 && capacity < maxCapacity) ({ slots, left } = place(kept, (capacity *= 2)));
  const header = Buffer.alloc(headerBytes);
  header.write(allowTableMagic, 0, "latin1");
  header.writeUInt16LE(allowTableVersion, 4);
  header.writeUInt32LE(generation, 8);
  header.writeUInt32LE(capacity, 12);
  header.writeUInt32LE(slots.filter((s) => s !== undefined).length, 16);
  const table = Buffer.alloc(slots.length * slotBytes);
  const paths: Buffer[] = [];
  let pathOffset = headerBytes + table.length;
  slots.forEach((e, i) => {
    if (e === undefined) return;
    const s = table.subarray(i * slotBytes, (i + 1) * slotBytes);
    s.writeBigUInt64LE(e.inode, 0);
    s.writeBigInt64LE(e.ctimeNs / 1_000_000_000n, 8);
    s.writeUInt32LE(e.major, 16);
    s.writeUInt32LE(e.minor, 20);
    s.writeUInt32LE(Number(e.ctimeNs % 1_000_000_000n), 24);
    s.writeUInt32LE(pathOffset, 28);
    s.writeUInt16LE(e.path.length, 32);
    s.writeUInt16LE(e.runs === undefined ? runsAny : e.runs === "command" ? runsCommand : runsInline, 34);
    if (typeof e.runs === "object") s.write(e.runs.inline, 36, maxOptionBytes, "latin1");
    paths.push(e.path);
    pathOffset += e.path.length;
  });
  return Buffer.concat([header, table, ...paths]);
}

/** The inverse of encodeAllowTable, for tests and tools; undefined for anything else. */
export function decodeAllowTable(buf: Buffer): { generation: number; entries: AllowEntry[] } | undefined {
  if (buf.length < headerBytes || buf.toString("latin1", 0, 4) !== allowTableMagic || buf.readUInt16LE(4) !== allowTableVersion) return undefined;
  const capacity = buf.readUInt32LE(12);
  const entries: AllowEntry[] = [];
  for (let i = 0; i < capacity + allowTableProbes - 1; i++) {
    const at = headerBytes + i * slotBytes;
    if (at + slotBytes > buf.length) return undefined;
    const kind = buf.readUInt16LE(at + 34);
    if (kind !== runsAny && kind !== runsCommand && kind !== runsInline) continue;
    const offset = buf.readUInt32LE(at + 28);
    entries.push({
      inode: buf.readBigUInt64LE(at),
      ctimeNs: buf.readBigInt64LE(at + 8) * 1_000_000_000n + BigInt(buf.readUInt32LE(at + 24)),
      major: buf.readUInt32LE(at + 16),
      minor: buf.readUInt32LE(at + 20),
      path: Buffer.from(buf.subarray(offset, offset + buf.readUInt16LE(at + 32))),
      ...(kind === runsCommand && { runs: "command" as const }),
      ...(kind === runsInline && { runs: { inline: buf.toString("latin1", at + 36, at + 36 + maxOptionBytes).replace(/\0+$/, "") } }),
    });
  }
  return { generation: buf.readUInt32LE(8), entries };
}

const keyOf = (e: AllowEntry): string => `${e.major}:${e.minor}:${e.inode}:${e.ctimeNs}:${e.path.toString("latin1")}`;

/** Whether what an entry lets go on covers this run (the library checks its stdio itself). */
function covers(runs: AllowEntry["runs"], run: Pick<ExecReport, "rawArgs" | "truncated">): boolean {
  if (runs === undefined) return true;
  return runs === "command" ? runsPlainCommand(run) : runsInlineCode(run, runs.inline);
}

/**
 * The sidecar's table file, kept in step with what it learns: each generation starts empty
 * (written at once, before the mode file names it), and new entries are written together a
 * moment after they come, off the path of the program that waits for its verdict.
 */
export class AllowTable {
  private readonly file: string;
  private generation = 0;
  private readonly entries = new Map<string, AllowEntry>();
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  /** Entries came while a write was under way. */
  private dirty = false;
  private readonly delayMs: number;
  private readonly onError: (err: Error) => void;

  /** `socketPath`: the report socket, beside which the file goes. */
  constructor(socketPath: string, onError: (err: Error) => void, delayMs = 20) {
    this.file = join(dirname(socketPath), "allowed");
    this.onError = onError;
    this.delayMs = delayMs;
  }

  /** A new, empty generation (a policy change: nothing found allowed before holds). Throws when the file cannot be written. */
  reset(generation: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.generation = generation;
    this.entries.clear();
    // At once, before the mode file names the generation.
    const tmp = join(dirname(this.file), ".allowed.tmp");
    writeFileSync(tmp, encodeAllowTable(generation, []), { mode: 0o644 });
    renameSync(tmp, this.file);
  }

  /** Adds an entry; false when the table is full. */
  add(entry: AllowEntry): boolean {
    if (this.generation === 0) return false;
    const key = keyOf(entry);
    if (this.entries.has(key)) return true;
    if (this.entries.size >= maxAllowEntries) return false;
    this.entries.set(key, entry);
    this.schedule();
    return true;
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.write();
    }, this.delayMs);
  }

  /**
   * Off the main thread: a write stalled on a busy disk must not hold up the verdicts the
   * event loop owes waiting programs. One at a time; entries added meanwhile go in the next.
   */
  private async write(): Promise<void> {
    if (this.writing) {
      this.dirty = true;
      return;
    }
    this.writing = true;
    const generation = this.generation;
    const tmp = join(dirname(this.file), ".allowed.next");
    try {
      await writeFile(tmp, encodeAllowTable(generation, [...this.entries.values()]), { mode: 0o644 });
      // A reset meanwhile wrote its own generation, which this must not replace.
      if (this.generation === generation) await rename(tmp, this.file);
    } catch (err) {
      this.onError(err as Error);
    } finally {
      this.writing = false;
      if (this.dirty && this.generation !== 0) this.schedule();
      this.dirty = false;
    }
  }

  /**
   * Whether this generation holds an entry for the file that lets this run go on: what a
   * program that went on without waiting says it found. The library's rule (standing_allow in
   * exec-report.c), but for what only the process could read (its comm, its stdio): no entry
   * covers a process whose parent is outside the PID namespace (`ppid` 0, /proc's where the
   * report's claim does not hold), a shell's only its plain commands, an interpreter's only its inline code.
   */
  holds(entry: AllowEntry, run: Pick<ExecReport, "rawArgs" | "truncated" | "ppid">): boolean {
    const held = this.generation === 0 || run.ppid === 0 ? undefined : this.entries.get(keyOf(entry));
    return held !== undefined && covers(held.runs, run);
  }

  /** Stops: what is pending is not written (the sidecar is going; without it, nothing is let go on). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.generation = 0;
  }
}
