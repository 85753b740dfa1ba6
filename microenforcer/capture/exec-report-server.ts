/**
 * The sidecar's end of complete mode: a unix socket on which the preload library reports
 * each exec from inside the new process, and, when the library waits (enforce mode), gets
 * the verdict back on the same connection.
 *
 * A report is input from the pod owner's processes, never proof: each is checked against
 * /proc (a (pid, start time) that contradicts what /proc shows is forged and dropped),
 * bounded in size and time, and rate-limited per process (past the limit, a program that
 * waits is denied rather than left to the failure choice). What it cannot check (the
 * process was already gone) is passed on marked unverified.
 */
import { chmodSync, lstatSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { parseUptime } from "../proc/parse.ts";
import { readCwd, readExeIdentity } from "../proc/process-facts.ts";
import { argvOf, readContainerId, readExecFingerprint, readProcText, readStat, readStatus } from "../proc/reader.ts";
import type { Allocation } from "./pid-history.ts";
import { encodeVerdict, frameLength, maxReportBytes, parentClaim, parseReport, reportDisagrees, type ExecReport, type SeenImage, type Sender, type Verdict } from "./exec-report.ts";

/** How the library behaves, read by it from `mode` beside the socket (see preload/README.md). */
export interface LibraryMode {
  enforce: boolean;
  /** When no verdict comes in time (sidecar gone, slow or refusing): allow or deny. */
  failure: "allow" | "deny";
  timeoutMs: number;
  /** The allow table (allow-table.ts) that goes with this mode; none when absent. */
  generation?: number;
}

/**
 * What the sidecar could establish about a report's sender: `live`, the process runs what it
 * reported (the sidecar read it in /proc); `unverified`, it is gone, or it runs another program
 * now (it did not wait, and exec'd since: or the report lies), so nothing may be killed on its word.
 */
export type Verification = "live" | "unverified";

/** A report's sender as /proc shows it: live or not, what the sidecar read of it. */
export interface ReportCheck extends Sender {
  verification: Verification;
}

export interface ReportOutcome {
  verdict: Verdict;
  /** Runs once the library has hung up (a backstop for a denied process that did not stop). */
  whenClosed?: () => void;
}

/** `silent`: a connection that sent no report in time, or was closed to let reports in (a flood of them). */
export type ReportProblemKind = "forged" | "rate-limited" | "malformed" | "silent";

export interface ReportProblem {
  kind: ReportProblemKind;
  /** Reports dropped: 1 for the first of a kind in a window, then how many more the window had. */
  count: number;
  /** One sentence about the first such report of the window. */
  detail: string;
}

export interface ReportServerOptions {
  socketPath: string;
  procRoot: string;
  onReport: (report: ExecReport, check: ReportCheck) => ReportOutcome;
  onProblem: (problem: ReportProblem) => void;
  /** Reports one process may send per window (one per exec is normal). */
  maxReportsPerProcess?: number;
  /** Whether the namespace handed a PID out when a process gone before the sidecar looked claims to have started (pid-history.ts). */
  allocation?: (pid: number, startTicks: number) => Allocation;
  /** No report is on its way any more (reportOnItsWay turned false). */
  onSettled?: () => void;
}

/** A connection that has not delivered its report by then is dropped. */
const readTimeoutMs = 1000;
/**
 * Connections open without a report before the oldest is closed for a new one. The library
 * sends its report right after it connects, so only a process holding the socket busy keeps
 * connections silent: refusing new ones instead would refuse the library, and a waiting
 * program would take the failure choice (allow by default) and run.
 */
const maxSilent = 256;
/** A silent connection younger than this is not closed for a new one: its report may be in flight. */
const minSilentMs = 20;
/** A connection without its report yet, younger than this, has one on its way: the library sends right after it connects. */
const onItsWayMs = 3;
const rateWindowMs = 10_000;
const defaultMaxReportsPerProcess = 32;
/** Per-process counters kept at most per window: beyond, the window restarts early. */
const maxTrackedProcesses = 65_536;

export class ExecReportServer {
  private readonly server: Server;
  private readonly options: ReportServerOptions;
  private readonly counts = new Map<string, number>();
  private windowStart = Date.now();
  private readonly listening: Promise<void>;
  /** Problems of the current window: the first is said at once, the rest counted. */
  private readonly problems = new Map<ReportProblemKind, { more: number; detail: string }>();
  private readonly problemTimer: NodeJS.Timeout;
  /** Connections without their report yet, in the order accepted, with when. */
  private readonly silent = new Map<Socket, number>();

  constructor(options: ReportServerOptions) {
    this.options = options;
    this.server = createServer({ allowHalfOpen: true }, (socket) => this.connection(socket));
    this.server.maxConnections = 4096;
    this.server.on("drop", () => this.problem("silent", `a connection to the report socket refused: ${this.server.maxConnections} open`));
    this.problemTimer = setInterval(() => this.flushProblems(), rateWindowMs).unref();
    this.listening = new Promise((resolve, reject) => {
      removeStaleSocket(options.socketPath);
      this.server.once("error", reject);
      this.server.listen({ path: options.socketPath, backlog: 1024 }, () => {
        this.server.off("error", reject);
        // App containers may run as any UID; what they send is checked, not trusted.
        chmodSync(options.socketPath, 0o666);
        resolve();
      });
    });
  }

  /** Whether a connection accepted moments ago has not delivered its report yet: one is on its way. */
  reportOnItsWay(): boolean {
    let newest = -Infinity;
    for (const since of this.silent.values()) newest = since; // in the order accepted
    return Date.now() - newest < onItsWayMs;
  }

  /** A connection stopped being silent (its report came, or it closed): say when none is on its way any more. */
  private unsilence(socket: Socket): void {
    if (!this.silent.delete(socket) || this.options.onSettled === undefined || this.reportOnItsWay()) return;
    this.options.onSettled();
  }

  /** Resolves once the socket accepts connections; rejects when it cannot be created. */
  ready(): Promise<void> {
    return this.listening;
  }

  async close(): Promise<void> {
    clearInterval(this.problemTimer);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.flushProblems();
  }

  private problem(kind: ReportProblemKind, detail: string): void {
    const seen = this.problems.get(kind);
    if (seen !== undefined) {
      seen.more++;
      return;
    }
    this.problems.set(kind, { more: 0, detail });
    this.options.onProblem({ kind, count: 1, detail });
  }

  private flushProblems(): void {
    for (const [kind, { more, detail }] of this.problems) if (more > 0) this.options.onProblem({ kind, count: more, detail });
    this.problems.clear();
  }

  private connection(socket: Socket): void {
    let buffered: Buffer = Buffer.alloc(0);
    let done = false;
    this.makeRoom();
    this.silent.set(socket, Date.now());
    const timer = setTimeout(() => {
      this.problem("silent", `a connection to the report socket sent no report within ${readTimeoutMs} ms: closed`);
      socket.destroy();
    }, readTimeoutMs);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clearTimeout(timer);
      this.unsilence(socket);
    });
    socket.on("data", (chunk: Buffer) => {
      if (done) return;
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const length = frameLength(buffered);
      if (length === undefined || (buffered.length < length && length <= maxReportBytes)) return;
      done = true;
      clearTimeout(timer);
      this.silent.delete(socket);
      const outcome = this.receive(length > maxReportBytes ? buffered : buffered.subarray(0, length));
      // After the report's verdict: the events that waited for it come now.
      if (this.options.onSettled !== undefined && !this.reportOnItsWay()) queueMicrotask(this.options.onSettled);
      if (outcome === undefined || !outcome.wait) {
        socket.destroy();
        return;
      }
      if (outcome.whenClosed !== undefined) socket.once("close", outcome.whenClosed);
      socket.end(encodeVerdict(outcome.verdict));
    });
    socket.on("end", () => {
      if (!done) socket.destroy();
    });
  }

  /** Closes the oldest silent connection when too many are open, unless it is young enough to be a report on its way. */
  private makeRoom(): void {
    if (this.silent.size < maxSilent) return;
    const [oldest, since] = this.silent.entries().next().value!;
    if (Date.now() - since < minSilentMs) return;
    this.silent.delete(oldest);
    oldest.destroy();
    this.problem("silent", `${maxSilent} connections to the report socket open without a report: the oldest, silent ${Date.now() - since} ms, closed to let reports in`);
  }

  /** One complete frame: parsed, checked, counted, handed on; undefined when dropped. */
  private receive(frame: Buffer): (ReportOutcome & { wait: boolean }) | undefined {
    const parsed = parseReport(frame);
    if (!parsed.ok) {
      this.problem("malformed", `malformed exec report dropped: ${parsed.problem}`);
      return undefined;
    }
    const report = parsed.report;
    const { forged, ...check } = verify(report, this.options.procRoot, this.options.allocation);
    if (forged !== undefined) {
      this.problem("forged", `forged exec report dropped: pid ${report.pid} start ${report.startTicks} (${forged})`);
      return undefined;
    }
    if (!this.withinRate(report)) {
      const limit = `more than ${this.maxPerProcess} exec reports of pid ${report.pid} in ${rateWindowMs / 1000} s`;
      this.problem("rate-limited", `${limit}: those beyond dropped, a program waiting for its verdict denied`);
      // Dropped, a waiting program would take the failure choice (allow by default) and run
      // before main: a process that first exec'd in place past the limit could so start a
      // blocked program. Denied, it stops (exit 126); its record and controls are the poller's.
      // No kill on hang-up: a copy of another process's state would otherwise kill it.
      return report.wait ? { verdict: { allow: false, reason: limit }, wait: true } : undefined;
    }
    return { ...this.options.onReport(report, check), wait: report.wait };
  }

  private get maxPerProcess(): number {
    return this.options.maxReportsPerProcess ?? defaultMaxReportsPerProcess;
  }

  private withinRate(report: ExecReport): boolean {
    const now = Date.now();
    if (now - this.windowStart >= rateWindowMs || this.counts.size >= maxTrackedProcesses) {
      this.counts.clear();
      this.windowStart = now;
    }
    const key = `${report.pid}:${report.startTicks}`;
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, count);
    return count <= this.maxPerProcess;
  }
}

/**
 * What /proc says of the (pid, start time) a report claims. A PID is never reused while its
 * holder lives, so a live holder that started before the claimed start proves the claim false;
 * a claimed start in the future too. A holder that started later means the reporter is gone
 * and its PID reused: true or not, it can no longer be checked.
 *
 * A live holder is held to the report too: any process of the pod can read another's PID,
 * start time and argv, and a report in its name would otherwise have the sidecar judge, and
 * kill, that process for a program it does not run. A program waiting for its verdict runs
 * what it reported, so a waiting report that disagrees is forged; one that did not wait may
 * have exec'd since, and is unverified. A parent the report names that does not hold is
 * replaced by /proc's; one alive and not the parent is a disagreement like any other.
 *
 * A report of a process gone already is held against when the namespace handed its PID out
 * (`allocation`): a process that never was had no PID to report from.
 */
export function verify(report: ExecReport, procRoot: string, allocation?: ReportServerOptions["allocation"]): ReportCheck & { forged?: string } {
  // Read before the start time is checked: a match then proves the cgroup was the sender's.
  let containerId: string | undefined;
  try {
    containerId = readContainerId(report.pid, procRoot);
  } catch {
    // gone: unverified below, as the poller would have no cgroup either
  }
  // Read before the start time too, for the same reason (a process gone fails these reads at once).
  const seen = readImage(report.pid, procRoot);
  const stat = readStat(report.pid, procRoot);
  if (stat !== undefined && stat.startTicks === report.startTicks) {
    const claim = parentClaim(report, stat.ppid, report.ppid === stat.ppid ? undefined : readStat(report.ppid, procRoot));
    const sender: Sender = { ...(containerId !== undefined && { containerId }), ...(claim !== "holds" && { ppid: stat.ppid }) };
    // No argv: it exited meanwhile (a zombie), and nothing is left to hold the report against.
    if (seen === undefined) return { verification: "unverified", ...sender };
    const disagrees = reportDisagrees(report, seen) ?? (claim === "false" ? `its parent is ${stat.ppid}, not ${report.ppid}` : undefined);
    if (disagrees === undefined) return { verification: "live", ...sender };
    if (report.wait) return { verification: "unverified", forged: `pid ${report.pid} waits for a verdict, yet ${disagrees}` };
    return { verification: "unverified", ...sender };
  }
  if (stat !== undefined && stat.startTicks < report.startTicks) {
    return { verification: "unverified", forged: `pid ${report.pid} belongs to a process started at ${stat.startTicks}, before the claimed start` };
  }
  const uptime = readUptimeTicks(procRoot);
  if (uptime !== undefined && report.startTicks > uptime) return { verification: "unverified", forged: `claimed start ${report.startTicks} is in the future (now ${uptime})` };
  const handed = allocation?.(report.pid, report.startTicks);
  if (handed?.kind === "not-handed-out") return { verification: "unverified", forged: handed.detail };
  return { verification: "unverified" };
}

/**
 * The image a process runs now, read as the poller reads it (its fingerprint: exe link and raw
 * argv), with its executable's identity, cwd and ids where the sidecar may read them;
 * undefined when its argv is gone (it exited).
 */
function readImage(pid: number, procRoot: string): SeenImage | undefined {
  const fingerprint = readExecFingerprint(pid, procRoot);
  if (fingerprint === undefined || argvOf(fingerprint) === "\0") return undefined;
  const seen: SeenImage = { fingerprint };
  try {
    seen.exe = readExeIdentity(pid, procRoot);
  } catch {
    // refused, or gone since: not held against the report
  }
  try {
    seen.cwd = readCwd(pid, procRoot);
  } catch {
    // the same
  }
  const status = readStatus(pid, procRoot);
  if (status !== undefined) seen.ids = { uid: status.uid, ...(status.gid !== undefined && { gid: status.gid }) };
  return seen;
}

/** Clock ticks (USER_HZ 100, as every Linux ABI in use) since boot, rounded up to absorb /proc/uptime's 10 ms steps. */
function readUptimeTicks(procRoot: string): number | undefined {
  try {
    const seconds = parseUptime(readProcText(`${procRoot}/uptime`));
    return seconds === undefined ? undefined : Math.ceil(seconds * 100) + 1;
  } catch {
    return undefined;
  }
}

/** A socket left by an earlier sidecar in the same emptyDir; anything else there is refused. */
function removeStaleSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** The `mode` file beside the socket: `audit|enforce allow|deny TIMEOUT_MS [GENERATION]`, replaced atomically; returns what it wrote. */
export function writeLibraryMode(socketPath: string, mode: LibraryMode): string {
  const dir = dirname(socketPath);
  const text = `${mode.enforce ? "enforce" : "audit"} ${mode.failure} ${Math.round(mode.timeoutMs)}${mode.generation === undefined ? "" : ` ${mode.generation}`}\n`;
  const tmp = join(dir, ".mode.tmp");
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, join(dir, "mode"));
  return text;
}

/** The `mode` file as it is now; undefined when it cannot be read (gone). */
export function readLibraryMode(socketPath: string): string | undefined {
  try {
    return readFileSync(join(dirname(socketPath), "mode"), "latin1");
  } catch {
    return undefined;
  }
}
