/**
 * Pure parsers for the /proc files the process sensor reads. Every input is what the
 * kernel wrote; anything a process controls (comm, argv, environ) may hold any bytes.
 */

export interface StatFields {
  pid: number;
  /** The kernel's task name (≤ 15 bytes); may contain spaces and parentheses. */
  comm: string;
  state: string;
  ppid: number;
  /** Clock ticks after boot at which the task started; with pid, its identity. */
  startTicks: number;
  /** The task's PF_* flags (field 9). */
  flags: number;
  utimeTicks: number;
  stimeTicks: number;
  /** Process group and session ids (fields 5, 6), as the reader's PID namespace numbers them: 0 when outside it. */
  pgrp: number;
  session: number;
  /** The controlling terminal's device number (field 7); 0: none. */
  ttyNr: number;
  /**
   * The wait(2) status of a zombie (field 52, Linux ≥ 3.5); 0 while it runs, and 0 when the
   * reader may not ptrace-read the task: meaningful only for a zombie the reader may read.
   */
  exitStatus?: number;
}

/** `/proc/PID/stat`: comm is bracketed by the first `(` and the *last* `)`. */
export function parseStat(text: string): StatFields | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return undefined;
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const pid = Number(text.slice(0, open - 1));
  const ppid = Number(rest[1]);
  const utimeTicks = Number(rest[11]);
  const stimeTicks = Number(rest[12]);
  const startTicks = Number(rest[19]);
  const flags = Number(rest[6]);
  const [pgrp, session, ttyNr] = [rest[2], rest[3], rest[4]].map(Number);
  if (![pid, ppid, startTicks, utimeTicks, stimeTicks, flags, pgrp, session, ttyNr].every(Number.isSafeInteger)) return undefined;
  const fields: StatFields = { pid, comm: text.slice(open + 1, close), state: rest[0] ?? "?", ppid, startTicks, flags, utimeTicks, stimeTicks, pgrp: pgrp!, session: session!, ttyNr: ttyNr! };
  const exitStatus = Number(rest[49]);
  if (rest[49] !== undefined && Number.isSafeInteger(exitStatus)) fields.exitStatus = exitStatus;
  return fields;
}

/** A wait(2) status as a shell reports it: the exit code, or 128 + the signal that killed it. */
export function exitCodeOf(status: number): { code: number; signal?: number } {
  const signal = status & 0x7f;
  return signal === 0 ? { code: (status >> 8) & 0xff } : { code: 128 + signal, signal };
}

/** PF_KTHREAD (include/linux/sched.h): the task is a kernel thread. */
const PF_KTHREAD = 0x00200000;

/** Kernel threads (kthreadd, kworkers, ...) run no program of any container: never a process record. */
export function isKernelThread(stat: StatFields): boolean {
  return (stat.flags & PF_KTHREAD) !== 0;
}

/** A task's ids as /proc/PID/status lists them. */
export interface Ids {
  real: number;
  effective: number;
  saved: number;
  /** What file access (and the kernel's ptrace read check) uses. */
  fs: number;
}

export interface StatusFields {
  tgid: number;
  pid: number;
  ppid: number;
  uid: Ids;
  /** Absent only from a truncated status. */
  gid?: Ids;
  /** CapPrm and CapEff; absent only from a truncated status. */
  capabilities?: { permitted: bigint; effective: bigint };
}

/** `/proc/PID/status`: the lines we need; Name is taken from stat (status escapes it). */
export function parseStatus(text: string): StatusFields | undefined {
  const field = (name: string): string | undefined => {
    const at = text.indexOf(`\n${name}:\t`);
    if (at < 0) return undefined;
    const end = text.indexOf("\n", at + 1);
    return text.slice(at + name.length + 3, end < 0 ? undefined : end);
  };
  const ids = (name: string): Ids | undefined => {
    const [real, effective, saved = effective, fs = effective] = (field(name) ?? "").split("\t").map(Number);
    return [real, effective, saved, fs].every((n) => Number.isSafeInteger(n)) ? { real: real!, effective: effective!, saved: saved!, fs: fs! } : undefined;
  };
  const mask = (name: string): bigint | undefined => {
    const hex = field(name);
    return hex !== undefined && /^[0-9a-f]{1,16}$/.test(hex) ? BigInt(`0x${hex}`) : undefined;
  };
  const tgid = Number(field("Tgid"));
  const pid = Number(field("Pid"));
  const ppid = Number(field("PPid"));
  const uid = ids("Uid");
  if (![tgid, pid, ppid].every((n) => Number.isSafeInteger(n)) || uid === undefined) return undefined;
  const status: StatusFields = { tgid, pid, ppid, uid };
  const gid = ids("Gid");
  if (gid !== undefined) status.gid = gid;
  const permitted = mask("CapPrm");
  const effective = mask("CapEff");
  if (permitted !== undefined && effective !== undefined) status.capabilities = { permitted, effective };
  return status;
}

/**
 * Decodes bytes as UTF-8, keeping invalid bytes visible as `\xNN` instead of U+FFFD,
 * so a forensic record shows exactly what the process passed.
 */
export function decodeBytes(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = buf.toString("utf8");
  if (!text.includes("\uFFFD") || Buffer.from(text).equals(buf)) return text;
  let out = "";
  let i = 0;
  while (i < buf.length) {
    const n = utf8SequenceLength(buf, i);
    if (n === 0) {
      out += `\\x${buf[i]!.toString(16).padStart(2, "0")}`;
      i += 1;
    } else {
      out += buf.toString("utf8", i, i + n);
      i += n;
    }
  }
  return out;
}

/** Length of the valid UTF-8 sequence starting at i, or 0 when the byte there starts none. */
function utf8SequenceLength(buf: Buffer, i: number): number {
  const b = buf[i]!;
  if (b < 0x80) return 1;
  const [n, min] = b >= 0xc2 && b <= 0xdf ? [2, 0x80] : b >= 0xe0 && b <= 0xef ? [3, 0x800] : b >= 0xf0 && b <= 0xf4 ? [4, 0x10000] : [0, 0];
  if (n === 0 || i + n > buf.length) return 0;
  let cp = b & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const c = buf[i + k]!;
    if ((c & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (c & 0x3f);
  }
  return cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) ? n : 0;
}

/**
 * `/proc/PID/cmdline`: NUL-separated argv. One trailing NUL ends the last argument; an
 * empty file means a zombie or a kernel thread, not an empty argument.
 */
export function splitCmdline(bytes: Uint8Array): string[] {
  if (bytes.length === 0) return [];
  const end = bytes[bytes.length - 1] === 0 ? bytes.length - 1 : bytes.length;
  const args: string[] = [];
  let start = 0;
  for (let i = 0; i <= end; i++) {
    if (i === end || bytes[i] === 0) {
      args.push(decodeBytes(bytes.subarray(start, i)));
      start = i + 1;
    }
  }
  return args;
}

const plainArg = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** argv as one readable line: arguments that a shell would split or expand are single-quoted. */
export function joinCommandLine(args: readonly string[]): string {
  return args.map((a) => (plainArg.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(" ");
}

export interface ExeTarget {
  path: string;
  /** The file was unlinked after exec (` (deleted)` suffix). */
  deleted: boolean;
  /** Executed from an anonymous memfd (`/memfd:NAME`): no file on disk at all. */
  memfd: boolean;
  /**
   * A dynamic loader run as a program (`ld.so FILE`), whatever its name: the preload library
   * saw the kernel start it with no loader of its own. What runs is the file its argv names.
   */
  loader?: true;
}

/** Target of the `/proc/PID/exe` link. */
export function parseExeLink(target: string): ExeTarget {
  const deleted = target.endsWith(" (deleted)");
  const path = deleted ? target.slice(0, -" (deleted)".length) : target;
  return { path, deleted, memfd: path.startsWith("/memfd:") };
}

/** Value of one variable in a NUL-separated `/proc/PID/environ`, undefined when absent. */
export function environValue(bytes: Uint8Array, name: string): string | undefined {
  const key = Buffer.from(`${name}=`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf(0, at);
    const stop = end < 0 ? buf.length : end;
    if (stop - at >= key.length && buf.subarray(at, at + key.length).equals(key)) {
      return decodeBytes(buf.subarray(at + key.length, stop));
    }
    at = stop + 1;
  }
  return undefined;
}

const containerIdPattern = /[0-9a-f]{64}/;

/**
 * Container id from `/proc/PID/cgroup`: the last path segment of the unified (v2) line,
 * else of the most specific v1 line; runtimes wrap the 64-hex id (`cri-containerd-ID.scope`,
 * `crio-ID`, `libpod-ID`, `docker-ID.scope`), which is returned bare. Undefined for the
 * root cgroup, which says nothing about a container.
 */
export function containerIdFromCgroup(text: string): string | undefined {
  const paths = text
    .split("\n")
    .map((line) => ({ unified: line.startsWith("0::"), path: line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1) }))
    .filter((l) => l.path !== "" && l.path !== "/");
  const chosen = paths.find((l) => l.unified) ?? paths.sort((a, b) => b.path.length - a.path.length)[0];
  if (chosen === undefined) return undefined;
  const segment = chosen.path.split("/").filter(Boolean).pop();
  if (segment === undefined || segment === "..") return undefined;
  return containerIdPattern.exec(segment)?.[0] ?? segment;
}

/** `btime` (boot time, whole seconds since the epoch) from `/proc/stat`. */
export function parseBootTime(procStat: string): number | undefined {
  const m = /^btime (\d+)$/m.exec(procStat);
  return m ? Number(m[1]) : undefined;
}

/** Seconds since boot, from `/proc/uptime` (10 ms resolution, unlike btime's whole seconds). */
export function parseUptime(text: string): number | undefined {
  const first = Number(text.split(" ")[0]);
  return Number.isFinite(first) ? first : undefined;
}

/** Numeric `/proc` entries (processes; threads are not listed). */
export function pidsFromDirEntries(names: readonly string[]): number[] {
  const pids: number[] = [];
  for (const n of names) {
    const c = n.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(n));
  }
  return pids;
}
