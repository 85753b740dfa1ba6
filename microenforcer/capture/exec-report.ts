/**
 * The preload library's exec report and the sidecar's verdict, as bytes on the unix socket
 * (wire format version 1, documented in preload/README.md; the writer is
 * preload/exec-report.c). Pure: parsing and encoding only.
 */
import { argvOf, execFingerprint, exeOf, type ProcSnapshot } from "../proc/reader.ts";
import { parseExeLink, splitCmdline, type ExeTarget, type Ids, type StatFields } from "../proc/parse.ts";
import type { ExeIdentity } from "../proc/process-facts.ts";
import { absoluteScriptPath, scriptNamedBy } from "../proc/script-argv.ts";

export const reportMagic = "MEXR";
export const reportVersion = 1;
export const reportHeaderBytes = 96;
/** The library's own bounds (MAX_* in exec-report.c): header + exe + cwd + cmdline + container + comm. */
export const maxReportBytes = reportHeaderBytes + 4095 + 4095 + 8192 + 253 + 64;

const flags = { wait: 1, exeStat: 2, exeTruncated: 4, cwdUnknown: 8, cmdlineTruncated: 16, standing: 32, loader: 64 } as const;

export interface ExecReport {
  /** The sender waits for a verdict (enforce mode). */
  wait: boolean;
  /** Enforce mode, and the sender did not wait: the allow table (allow-table.ts) holds its executable. */
  standing: boolean;
  /** The kernel started the executable with no loader of its own, yet the library was loaded: it is a loader run as a program. */
  loader: boolean;
  pid: number;
  ppid: number;
  startTicks: number;
  comm: string;
  uid: { real: number; effective: number; saved: number };
  gid: { real: number; effective: number; saved: number };
  /** From statx of /proc/self/exe inside the process: the same fact the poller reads at first sight. */
  exe?: ExeIdentity;
  /** The same identity exactly as the library read it: what the allow table (allow-table.ts) names files by. */
  exeKey?: ExeKey;
  /** Target of /proc/self/exe, decoded as Node decodes readlink (so fingerprints compare). */
  exeLink: string;
  /** NUL-separated argv exactly as /proc/self/cmdline gave it. */
  rawArgs: Buffer;
  cwd?: string;
  /** MICROENFORCER_CONTAINER from the process's environment. */
  container?: string;
  truncated: { exe: boolean; cmdline: boolean };
}

/** An executable's identity to the nanosecond: device, inode (overlayfs may use all 64 bits) and ctime. */
export interface ExeKey {
  major: number;
  minor: number;
  inode: bigint;
  ctimeNs: bigint;
}

export type ParseResult = { ok: true; report: ExecReport } | { ok: false; problem: string };

/** Bytes a frame starting at `buf` announces, once its first 12 bytes are in; undefined before. */
export function frameLength(buf: Buffer): number | undefined {
  return buf.length < 12 ? undefined : buf.readUInt32LE(8);
}

export function parseReport(buf: Buffer): ParseResult {
  if (buf.length < reportHeaderBytes) return { ok: false, problem: `${buf.length} bytes, shorter than the ${reportHeaderBytes}-byte header` };
  if (buf.toString("latin1", 0, 4) !== reportMagic) return { ok: false, problem: "not an exec report (bad magic)" };
  const version = buf.readUInt16LE(4);
  if (version !== reportVersion) return { ok: false, problem: `unsupported version ${version}` };
  const total = buf.readUInt32LE(8);
  if (total !== buf.length || total > maxReportBytes) return { ok: false, problem: `length field ${total} does not match the ${buf.length} bytes received` };
  const lengths = [buf.readUInt16LE(88), buf.readUInt16LE(90), buf.readUInt16LE(92), buf.readUInt16LE(94), buf.readUInt16LE(20)];
  if (reportHeaderBytes + lengths.reduce((a, b) => a + b, 0) !== total) return { ok: false, problem: "field lengths do not add up to the message length" };
  const [exeBytes, cwdBytes, cmdlineBytes, containerBytes] = lengths;
  const f = buf.readUInt16LE(6);
  let at = reportHeaderBytes;
  const take = (n: number): Buffer => buf.subarray(at, (at += n));
  const exeLink = take(exeBytes!).toString("utf8");
  const cwd = take(cwdBytes!).toString("utf8");
  const rawArgs = Buffer.from(take(cmdlineBytes!));
  const container = take(containerBytes!).toString("utf8");
  const comm = take(buf.readUInt16LE(20)).toString("utf8");
  const pid = buf.readInt32LE(12);
  const startTicks = Number(buf.readBigUInt64LE(24));
  if (pid <= 0 || !Number.isSafeInteger(startTicks)) return { ok: false, problem: `impossible identity pid ${pid} start ${startTicks}` };
  const report: ExecReport = {
    wait: (f & flags.wait) !== 0,
    standing: (f & flags.standing) !== 0,
    loader: (f & flags.loader) !== 0,
    pid,
    ppid: buf.readInt32LE(16),
    startTicks,
    comm,
    uid: { real: buf.readUInt32LE(32), effective: buf.readUInt32LE(36), saved: buf.readUInt32LE(40) },
    gid: { real: buf.readUInt32LE(44), effective: buf.readUInt32LE(48), saved: buf.readUInt32LE(52) },
    exeLink,
    rawArgs,
    truncated: { exe: (f & flags.exeTruncated) !== 0, cmdline: (f & flags.cmdlineTruncated) !== 0 },
  };
  if ((f & flags.exeStat) !== 0) {
    const key: ExeKey = {
      major: buf.readUInt32LE(56),
      minor: buf.readUInt32LE(60),
      inode: buf.readBigUInt64LE(64),
      ctimeNs: buf.readBigInt64LE(72) * 1_000_000_000n + BigInt(buf.readUInt32LE(80)),
    };
    report.exeKey = key;
    report.exe = {
      device: `${key.major}:${key.minor}`,
      inode: Number(key.inode),
      ctimeMs: Number(buf.readBigInt64LE(72)) * 1000 + buf.readUInt32LE(80) / 1e6,
      mode: buf.readUInt32LE(84),
    };
  }
  if ((f & flags.cwdUnknown) === 0 && cwd !== "") report.cwd = cwd;
  if (container !== "") report.container = container;
  return { ok: true, report };
}

/** The inverse of parseReport, for tests and tools that speak for the library. */
export function encodeReport(r: ExecReport): Buffer {
  const strings = [Buffer.from(r.exeLink), Buffer.from(r.cwd ?? ""), r.rawArgs, Buffer.from(r.container ?? ""), Buffer.from(r.comm)];
  const header = Buffer.alloc(reportHeaderBytes);
  const total = reportHeaderBytes + strings.reduce((a, s) => a + s.length, 0);
  header.write(reportMagic, 0, "latin1");
  header.writeUInt16LE(reportVersion, 4);
  let f = r.wait ? flags.wait : r.standing ? flags.standing : 0;
  if (r.exe !== undefined) f |= flags.exeStat;
  if (r.cwd === undefined) f |= flags.cwdUnknown;
  if (r.truncated.exe) f |= flags.exeTruncated;
  if (r.truncated.cmdline) f |= flags.cmdlineTruncated;
  if (r.loader) f |= flags.loader;
  header.writeUInt16LE(f, 6);
  header.writeUInt32LE(total, 8);
  header.writeInt32LE(r.pid, 12);
  header.writeInt32LE(r.ppid, 16);
  header.writeUInt16LE(strings[4]!.length, 20);
  header.writeBigUInt64LE(BigInt(r.startTicks), 24);
  [r.uid.real, r.uid.effective, r.uid.saved, r.gid.real, r.gid.effective, r.gid.saved].forEach((v, i) => header.writeUInt32LE(v, 32 + 4 * i));
  if (r.exe !== undefined) {
    const [major, minor] = r.exe.device.split(":").map(Number);
    const seconds = Math.floor(r.exe.ctimeMs / 1000);
    // The exact key when there is one; else what the rounded identity gives.
    const key: ExeKey = r.exeKey ?? {
      major: major!,
      minor: minor!,
      inode: BigInt(r.exe.inode),
      ctimeNs: BigInt(seconds) * 1_000_000_000n + BigInt(Math.round((r.exe.ctimeMs - seconds * 1000) * 1e6)),
    };
    header.writeUInt32LE(key.major, 56);
    header.writeUInt32LE(key.minor, 60);
    header.writeBigUInt64LE(key.inode, 64);
    header.writeBigInt64LE(key.ctimeNs / 1_000_000_000n, 72);
    header.writeUInt32LE(Number(key.ctimeNs % 1_000_000_000n), 80);
    header.writeUInt32LE(r.exe.mode ?? 0, 84);
  }
  strings.slice(0, 4).forEach((s, i) => header.writeUInt16LE(s.length, 88 + 2 * i));
  return Buffer.concat([header, ...strings]);
}

export type Verdict = { allow: true } | { allow: false; reason: string };

/** `A`, or `D` + a length byte + at most 255 bytes of reason (cut on a character boundary). */
export function encodeVerdict(v: Verdict): Buffer {
  if (v.allow) return Buffer.from([0x41, 0]);
  let reason = Buffer.from(v.reason.replaceAll("\n", " "));
  if (reason.length > 255) reason = Buffer.from(reason.subarray(0, 255).toString("utf8").replace(/\uFFFD$/, ""));
  return Buffer.concat([Buffer.from([0x44, reason.length]), reason]);
}

/** What the sidecar read of a report's sender in /proc, and takes over the report's word. */
export interface Sender {
  /** Its cgroup's container id, read while the sender lived. */
  containerId?: string;
  /** Its parent, where the report's does not hold (parentClaim). */
  ppid?: number;
}

/** The report as the capture loop's snapshot of the same process, so both sensors feed one tracker. */
export function reportSnapshot(r: ExecReport, sender: Sender = {}): ProcSnapshot {
  const snapshot: ProcSnapshot = {
    pid: r.pid,
    ppid: sender.ppid ?? r.ppid,
    comm: r.comm,
    state: "R",
    startTicks: r.startTicks,
    uid: r.uid.real,
    euid: r.uid.effective,
    args: splitCmdline(r.rawArgs),
    problems: [],
    fingerprint: execFingerprint(r.exeLink, r.rawArgs.toString("latin1")),
  };
  const exe = reportedExe(r);
  if (exe !== undefined) snapshot.exe = exe;
  if (r.container !== undefined) snapshot.container = r.container;
  if (sender.containerId !== undefined) snapshot.containerId = sender.containerId;
  if (r.exe !== undefined) snapshot.exeFile = r.exe;
  if (r.cwd !== undefined) snapshot.cwd = r.cwd;
  // The script's path from the reported argv, for the controls before main; its identity is the poller's to read.
  const named = exe === undefined ? undefined : scriptNamedBy(exe.path.slice(exe.path.lastIndexOf("/") + 1), snapshot.args!, r.loader);
  const script = named === undefined ? undefined : absoluteScriptPath(named, r.cwd);
  if (script !== undefined) snapshot.script = { path: script };
  return snapshot;
}

/** The executable the report names, a loader as such (ExeTarget.loader); undefined when its link was unreadable. */
export function reportedExe(r: ExecReport): ExeTarget | undefined {
  if (r.exeLink === "") return undefined;
  const exe = parseExeLink(r.exeLink);
  if (r.loader) exe.loader = true;
  return exe;
}

/** What /proc shows of a live process now, to hold its report against. */
export interface SeenImage {
  /** Its exe link (empty when unreadable) and raw argv, as proc/reader.ts readExecFingerprint reads them. */
  fingerprint: string;
  exe?: ExeIdentity;
  cwd?: string;
  /** Its user and group ids (/proc/PID/status); gid absent from a truncated status. */
  ids?: { uid: Ids; gid?: Ids };
}

/**
 * Where a report disagrees with what its live process shows now: undefined when it agrees.
 * A process reports before its main: one that waits still runs what it reported; one that did
 * not wait may have exec'd or changed directory since (or the report lies: no telling).
 */
export function reportDisagrees(r: ExecReport, seen: SeenImage): string | undefined {
  const exeLink = exeOf(seen.fingerprint);
  if (exeLink !== "" && r.exeLink !== exeLink) return `runs ${exeLink}, not ${r.exeLink}`;
  const args = argvOf(seen.fingerprint).slice(1);
  const reported = r.rawArgs.toString("latin1");
  if (r.truncated.cmdline ? !args.startsWith(reported) : args !== reported) return "runs with other arguments than the report names";
  if (r.exe !== undefined && seen.exe !== undefined && (r.exe.device !== seen.exe.device || r.exe.inode !== seen.exe.inode || Math.abs(r.exe.ctimeMs - seen.exe.ctimeMs) >= 0.001)) {
    return "its executable's identity or ctime is not the one the report names";
  }
  if (r.cwd !== undefined && seen.cwd !== undefined && r.cwd !== seen.cwd) return `works in ${seen.cwd}, not ${r.cwd}`;
  const same = (claimed: ExecReport["uid"], ids: Ids): boolean => claimed.real === ids.real && claimed.effective === ids.effective && claimed.saved === ids.saved;
  if (seen.ids !== undefined && (!same(r.uid, seen.ids.uid) || (seen.ids.gid !== undefined && !same(r.gid, seen.ids.gid)))) {
    return `runs as uid ${seen.ids.uid.effective}, not the user and group ids the report names`;
  }
  return undefined;
}

/**
 * What a report's parent claim is worth for a live process whose parent is `ppidNow`. A parent
 * never changes while it lives, so a claimed parent alive now and other than `ppidNow` is
 * `false` (a process naming the sensor as its parent, whose tree the sensor ignores). One
 * that died since (a zombie, gone, or its PID taken by a younger process: `claimed` is what
 * /proc shows under that PID) can be true only of an orphan, which the namespace's init
 * adopts: it `holds` there, and is `unsure` elsewhere (a subreaper adopts only its own
 * descendants' orphans, but a process whose parent lives could also name any dead PID): /proc's
 * parent is taken, and the claim is not called false. A parent outside the PID namespace (0)
 * leaves its orphans to the namespace's init.
 */
export type ParentClaim = "holds" | "unsure" | "false";

export function parentClaim(r: ExecReport, ppidNow: number, claimed: StatFields | undefined): ParentClaim {
  if (r.ppid === ppidNow) return "holds";
  if (r.ppid === 0) return ppidNow === 1 ? "holds" : "false";
  const died = claimed === undefined || claimed.state === "Z" || claimed.state === "X" || claimed.startTicks > r.startTicks;
  if (!died) return "false";
  return ppidNow === 1 ? "holds" : "unsure";
}
