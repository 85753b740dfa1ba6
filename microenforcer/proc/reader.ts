/**
 * The I/O edge of the process sensor: reads one process's /proc files synchronously.
 * Synchronous on purpose: these reads take microseconds, run on the capture worker's own
 * thread, and going through libuv's thread pool would cost more than the read itself.
 */
import { closeSync, openSync, readSync, readlinkSync, readdirSync, statSync } from "node:fs";
import { accessDenial, type AccessDenial } from "./access.ts";
import {
  containerIdFromCgroup,
  environValue,
  isKernelThread,
  parseExeLink,
  parseStat,
  parseStatus,
  pidsFromDirEntries,
  splitCmdline,
  type ExeTarget,
  type StatFields,
  type StatusFields,
} from "./parse.ts";
import { CONTAINER_ENV } from "../sidecar-contract.ts";
import { runsCommandLoop } from "./interpreters.ts";
import { readCwd, readExeIdentity, readScript, readStdio, type ExeIdentity, type ScriptFile, type Stdio } from "./process-facts.ts";
import { absoluteScriptPath, scriptNamedBy } from "./script-argv.ts";

/** A /proc file we could not read although the process exists: reported, never fatal. */
export interface ReadProblem {
  file: "exe" | "cmdline" | "environ" | "cgroup" | "status" | "stat" | "fd" | "cwd" | "script";
  code: string;
  uid: number;
  /** Why the kernel refused (EACCES, EPERM), when the sensor could tell. */
  denial?: AccessDenial;
}

export interface ProcSnapshot {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
  startTicks: number;
  uid: number;
  euid: number;
  /** Process group and session ids, in this PID namespace (0: outside it); from stat, so absent in a preload report. */
  pgrp?: number;
  session?: number;
  /** Whether it has a controlling terminal (a `kubectl exec -t` session has one). */
  tty?: boolean;
  /** Undefined when unreadable (permission) or absent (zombie). */
  exe?: ExeTarget;
  /** The executable's identity and times, through the exe link at the look that read it. */
  exeFile?: ExeIdentity;
  /** The working directory, read with the exe link. */
  cwd?: string;
  /** The script file an interpreter's argv names, read with the exe link. */
  script?: ScriptFile;
  /** Where fds 0–2 go, for interpreters when the policy asked for it (ReadOptions.stdio). */
  stdio?: Stdio;
  /** Undefined when unreadable; empty for a zombie. */
  args?: string[];
  /** `MICROENFORCER_CONTAINER` from environ, when environ was read and holds it. */
  container?: string;
  /**
   * The look straddled an execve (read for attribution only): environ read empty while argv
   * changed under it, or the name read with stat changed by the end. It tells neither the
   * image nor the environment (the container) for sure: look again.
   */
  execving?: true;
  /** Container id from the cgroup path, when the cgroup was read. */
  containerId?: string;
  /** What could not be read, and why (a fact missing here says so in the records). */
  problems: ReadProblem[];
  /** Raw exe link and argv bytes: what readExecFingerprint compares against. */
  fingerprint: string;
}

export type ReadResult =
  | { kind: "process"; snapshot: ProcSnapshot }
  /** A thread of another process (its TID came from the same PID counter). */
  | { kind: "thread"; tgid: number }
  /** A kernel thread (PF_KTHREAD): seen only outside a pod's PID namespace, never a process record. */
  | { kind: "kernel-thread" }
  /** No such PID now: exited (or never seen) — normal, not an error. */
  | { kind: "gone" };

export interface ReadOptions {
  /** Whether to read environ and cgroup for container attribution (costly; only where needed). */
  attribution: (ppid: number) => boolean;
  /** Whether to read where an interpreter's stdio goes (the reverse-shell control is on). */
  stdio?: boolean;
}

const gone = new Set(["ENOENT", "ESRCH"]);

let scratch = Buffer.allocUnsafe(16 * 1024);

/** Whole content of a /proc file. The returned view is valid until the next call. */
export function readProcBytes(path: string): Buffer {
  const fd = openSync(path, "r");
  try {
    let length = 0;
    for (;;) {
      if (length === scratch.length) {
        const bigger = Buffer.allocUnsafe(scratch.length * 2);
        scratch.copy(bigger, 0, 0, length);
        scratch = bigger;
      }
      const n = readSync(fd, scratch, length, scratch.length - length, null);
      if (n === 0) return scratch.subarray(0, length);
      length += n;
    }
  } finally {
    closeSync(fd);
  }
}

export function readProcText(path: string): string {
  return readProcBytes(path).toString("utf8");
}

/**
 * A /proc file kept open and read again from offset 0, which makes the kernel generate it
 * afresh: a few microseconds a read instead of an open, read and close, for files polled
 * every millisecond (ns_last_pid, the socket counters). Throws when it cannot be opened.
 */
export class OpenProcFile {
  private readonly fd: number;
  private readonly buffer: Buffer;

  /** `maxBytes`: the most of the file that is read. */
  constructor(path: string, maxBytes: number) {
    this.fd = openSync(path, "r");
    this.buffer = Buffer.allocUnsafe(maxBytes);
  }

  read(): string {
    return this.buffer.toString("latin1", 0, readSync(this.fd, this.buffer, 0, this.buffer.length, 0));
  }

  close(): void {
    closeSync(this.fd);
  }
}

function errnoCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "EUNKNOWN";
}

/**
 * Reads one PID. stat and status decide whether it exists at all; the other files are
 * optional and their failures land in `problems` (a vanished process mid-read returns gone).
 */
export function readProcess(pid: number, options: ReadOptions, procRoot = "/proc"): ReadResult {
  const dir = `${procRoot}/${pid}`;
  let statText: string;
  let statusText: string;
  try {
    statText = readProcText(`${dir}/stat`);
    statusText = readProcText(`${dir}/status`);
  } catch (err) {
    if (gone.has(errnoCode(err))) return { kind: "gone" };
    throw err;
  }
  const stat = parseStat(statText);
  const status = parseStatus(statusText);
  if (stat === undefined || status === undefined) {
    throw new Error(`unparseable ${dir}/stat or status: ${JSON.stringify(statText.slice(0, 200))}`);
  }
  // A process being reaped is detached from its PIDs before its /proc entry goes: it reads
  // Tgid 0 (seen in fork storms). It is gone, not a thread of process 0.
  if (status.tgid === 0) return { kind: "gone" };
  if (status.tgid !== pid) return { kind: "thread", tgid: status.tgid };
  if (isKernelThread(stat)) return { kind: "kernel-thread" };

  const snapshot: ProcSnapshot = {
    pid,
    ppid: stat.ppid,
    comm: stat.comm,
    state: stat.state,
    startTicks: stat.startTicks,
    uid: status.uid.real,
    euid: status.uid.effective,
    pgrp: stat.pgrp,
    session: stat.session,
    tty: stat.ttyNr !== 0,
    problems: [],
    fingerprint: "",
  };
  let denial: AccessDenial | undefined | null = null;
  // `whenGone`: a fact the process had, lost because it went away mid-look, is reported too.
  const optional: Optional = (file, read, whenGone = false) => {
    try {
      return read();
    } catch (err) {
      const code = errnoCode(err);
      // ENOENT on exe of a live PID means a zombie or kernel thread: nothing to report.
      if (gone.has(code) && !whenGone) return undefined;
      const problem: ReadProblem = { file, code, uid: snapshot.euid };
      if (denied.has(code)) {
        if (denial === null) denial = readAccessDenial(pid, procRoot, status);
        if (denial !== undefined) problem.denial = denial;
      }
      snapshot.problems.push(problem);
      return undefined;
    }
  };
  // The executable is read before argv as well as after: a process that exits between the
  // two reads (its memory gone, so exe reads ENOENT) keeps the one it ran, while one that
  // exec'd in between shows the new one.
  const before = peekExe(pid, procRoot);
  let rawArgs = "";
  snapshot.args = optional("cmdline", () => {
    const bytes = readProcBytes(`${dir}/cmdline`);
    rawArgs = bytes.toString("latin1");
    return splitCmdline(bytes);
  });
  const exeLink = optional("exe", () => orBefore(() => readlinkSync(`${dir}/exe`), before?.link));
  if (exeLink !== undefined) {
    snapshot.exe = parseExeLink(exeLink);
    readFirstSight(snapshot, options, procRoot, optional, exeLink === before?.link ? before.identity : undefined);
  }
  snapshot.fingerprint = execFingerprint(exeLink ?? "", rawArgs);
  if (options.attribution(stat.ppid)) {
    const environ = optional("environ", () => readProcBytes(`${dir}/environ`));
    if (environ !== undefined && environ.length > 0) {
      const container = environValue(environ, CONTAINER_ENV);
      if (container !== undefined) snapshot.container = container;
    } else if (environ !== undefined && snapshot.args !== undefined && optional("cmdline", () => readProcBytes(`${dir}/cmdline`).toString("latin1")) !== rawArgs) {
      // execve empties environ and argv from installing the new image until it has laid out
      // the new stack (tens of µs, longer when preempted): an empty environ beside an argv
      // that changed since it was read is that window, not a process without a container.
      snapshot.execving = true;
    }
    const containerId = optional("cgroup", () => readContainerId(pid, procRoot));
    if (containerId !== undefined) snapshot.containerId = containerId;
    // What a new container's or session's first process is, is decided from this one look:
    // stat read before an exec and argv after it (runc's init name beside the command) is no
    // such look. A changed name says so (execve sets it).
    const now = readStat(pid, procRoot);
    if (now !== undefined && now.startTicks === stat.startTicks && now.comm !== stat.comm) snapshot.execving = true;
  }
  return { kind: "process", snapshot };
}

const denied = new Set(["EACCES", "EPERM"]);

/** The sensor's own status, per /proc root (its ids and capabilities never change). */
const ownStatus = new Map<string, StatusFields | undefined>();

/**
 * Why /proc/PID/{exe,fd,environ,root} was refused: the target's status (read unless given)
 * against the sensor's own. Undefined when either cannot be read.
 */
export function readAccessDenial(pid: number, procRoot = "/proc", status?: StatusFields): AccessDenial | undefined {
  try {
    if (!ownStatus.has(procRoot)) ownStatus.set(procRoot, parseStatus(readProcText(`${procRoot}/self/status`)));
    const own = ownStatus.get(procRoot);
    const target = status ?? parseStatus(readProcText(`${procRoot}/${pid}/status`));
    if (own === undefined || target === undefined) return undefined;
    // A non-dumpable task's files are owned by root: telling only when it runs as another user.
    const dumpable = target.uid.effective === 0 ? undefined : statSync(`${procRoot}/${pid}/environ`).uid !== 0;
    return accessDenial(own, target, dumpable);
  } catch {
    return undefined;
  }
}

/** The exe link and the identity through it, as far as they can be read now. */
function peekExe(pid: number, procRoot: string): { link: string; identity?: ExeIdentity } | undefined {
  try {
    const link = readlinkSync(`${procRoot}/${pid}/exe`);
    try {
      return { link, identity: readExeIdentity(pid, procRoot) };
    } catch {
      return { link };
    }
  } catch {
    return undefined; // the read after argv says why
  }
}

/** `read()`, or what was read before when the process is gone now. */
function orBefore<T>(read: () => T, before: T | undefined): T {
  try {
    return read();
  } catch (err) {
    if (before !== undefined && gone.has(errnoCode(err))) return before;
    throw err;
  }
}

/** Reads one optional fact of the process; a failure lands in its problems, and it returns undefined. */
type Optional = <T>(file: ReadProblem["file"], read: () => T, whenGone?: boolean) => T | undefined;

/**
 * The facts controls decide on, read at the look that read the exe link: a decision rests on
 * what was seen then, even when the process and its file are gone a millisecond later.
 * `seen`: the executable's identity read before argv, kept if the process is gone now.
 */
function readFirstSight(snapshot: ProcSnapshot, options: ReadOptions, procRoot: string, optional: Optional, seen: ExeIdentity | undefined): void {
  const pid = snapshot.pid;
  // The exe link itself, not the path it names: that may be unlinked or replaced already.
  const exeFile = optional("exe", () => orBefore(() => readExeIdentity(pid, procRoot), seen), true);
  if (exeFile !== undefined) snapshot.exeFile = exeFile;
  const cwd = optional("cwd", () => readCwd(pid, procRoot));
  if (cwd !== undefined) snapshot.cwd = cwd;
  const name = snapshot.exe!.path.slice(snapshot.exe!.path.lastIndexOf("/") + 1);
  const named = snapshot.args === undefined ? undefined : scriptNamedBy(name, snapshot.args);
  const path = named === undefined ? undefined : absoluteScriptPath(named, snapshot.cwd);
  // The path alone still names the program to the controls when its file cannot be read.
  if (path !== undefined) snapshot.script = optional("script", () => readScript(pid, path, procRoot), true) ?? { path };
  if (options.stdio === true && runsCommandLoop(name, snapshot.comm, named)) {
    const stdio = optional("fd", () => readStdio(pid, procRoot));
    if (stdio !== undefined) snapshot.stdio = stdio;
  }
}

/** What tells one exec of a process from the next: the exe link and the raw argv (latin1). */
export function execFingerprint(exeLink: string, rawArgs: string): string {
  return `${exeLink}\0${rawArgs}`;
}

/** The argv part of a fingerprint (exe link, NUL, raw argv). */
export function argvOf(fingerprint: string): string {
  return fingerprint.slice(fingerprint.indexOf("\0"));
}

/** The exe link part of a fingerprint; empty when it could not be read. */
export function exeOf(fingerprint: string): string {
  return fingerprint.slice(0, fingerprint.indexOf("\0"));
}

/**
 * Two looks at one image: the same argv, and the same exe link unless one look could not
 * read it (refused, or the process exited between the reads of argv and exe).
 */
export function sameImage(a: string, b: string): boolean {
  return argvOf(a) === argvOf(b) && (exeOf(a) === exeOf(b) || exeOf(a) === "" || exeOf(b) === "");
}

/**
 * What changes on exec, read as cheaply as possible: the exe link and the raw argv bytes.
 * Undefined when the process is gone.
 */
export function readExecFingerprint(pid: number, procRoot = "/proc"): string | undefined {
  let exe = "";
  try {
    exe = readlinkSync(`${procRoot}/${pid}/exe`);
  } catch (err) {
    if (errnoCode(err) !== "ENOENT" && errnoCode(err) !== "EACCES") return undefined;
  }
  try {
    return execFingerprint(exe, readProcBytes(`${procRoot}/${pid}/cmdline`).toString("latin1"));
  } catch {
    return undefined;
  }
}

/**
 * The container id of a process's cgroup: the identity both sensors give a process (a
 * preload report carries none, and the tracker knows containers by it). Throws when unreadable.
 */
export function readContainerId(pid: number, procRoot = "/proc"): string | undefined {
  return containerIdFromCgroup(readProcText(`${procRoot}/${pid}/cgroup`));
}

/** `/proc/PID/stat` alone (identity, comm, state), or undefined when the PID is gone. */
export function readStat(pid: number, procRoot = "/proc"): StatFields | undefined {
  try {
    return parseStat(readProcText(`${procRoot}/${pid}/stat`));
  } catch {
    return undefined;
  }
}

/** `/proc/PID/status` alone (parent, user and group ids), or undefined when unreadable. */
export function readStatus(pid: number, procRoot = "/proc"): StatusFields | undefined {
  try {
    return parseStatus(readProcText(`${procRoot}/${pid}/status`));
  } catch {
    return undefined;
  }
}

export function listPids(procRoot = "/proc"): number[] {
  return pidsFromDirEntries(readdirSync(procRoot));
}
