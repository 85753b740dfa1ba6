/**
 * Complete mode on the main thread: the /proc poller and the preload library's reports
 * describe the same execs, and each exec is recorded once, with its controls run once.
 *
 * Both sensors name an exec by (pid, start time, fingerprint) — the exe link and raw argv,
 * read by the poller from /proc/PID and by the library from /proc/self. Whichever comes
 * first makes the process event; the other only adds to it:
 * - a report first: controls and record at once (`microenforcer.sensor.detection:
 *   preload`); the poller's later sight of the same image is dropped before the tracker;
 * - the poller first, for a program that should report: its controls and record wait for
 *   the report, up to graceMs. With the report, they run with what only the process knew
 *   (its executable's ctime decides drift) and, in enforce mode, answer the waiting
 *   program (deny stops it before main). Without, the record goes out marked `absent` and
 *   the controls run as the poller alone would have them (a kill in enforce mode). Overdue
 *   means past graceMs and past two more expire calls: a program writes its report before
 *   main, so a short one's report is already in the socket when the poller sees it exit,
 *   but a main thread that stalled (a busy node) takes the poller's events from the worker
 *   one loop turn before it accepts the connection and another before it reads it;
 * - the poller first, where /proc already tells no report can come (a static binary, an
 *   environment without LD_PRELOAD, ...): at once, marked absent with the reason;
 * - the poller saw only a fork that died (`exec_unseen`) or a zombie: that record waits too,
 *   and a report for the same process replaces it with the program it ran;
 * - a report ends the wait of the poller's earlier sights of its process (their reports would
 *   have come first): a verdict never waits behind them.
 * Records about a process that wait keep their order (its exit comes after its exec).
 */
import type { Finding } from "../policy/process-controls.ts";
import type { PolicyHolder } from "../policy/policy-holder.ts";
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";
import type { PreloadFacts } from "../proc/preload-facts.ts";
import { sameImage, type ProcSnapshot, type ReadProblem } from "../proc/reader.ts";
import { processRecord } from "../records/process-records.ts";
import type { SensorRecord } from "../records/record.ts";
import { absenceReason, absent, type AbsenceReason, type PreloadSetup, type PreloadStatus } from "../tracker/preload-status.ts";
import { addReported, type ProcessEvent, type ProcessInfo } from "../tracker/process-tracker.ts";

/**
 * A record built when it is taken. A program waiting before main needs only the verdict, so
 * the exec record (a few tens of µs: attributes, redaction) is built after the answer left.
 */
export type LaterRecord = () => SensorRecord | undefined;

/** Records of one step, /proc problems met on the way, and the verdict for a program that waits. */
export interface StageResult {
  records: Array<SensorRecord | LaterRecord>;
  problems: Array<{ problem: ReadProblem; pid: number }>;
  deny?: Finding;
}

export interface CompleteModeDeps {
  setup: PreloadSetup;
  clock: BootClock;
  policy: PolicyHolder;
  /** /proc's facts about a process while it runs the image `fingerprint` (nothing once it moved on). */
  readFacts: (pid: number, fingerprint: string) => PreloadFacts;
  /**
   * The controls of a process event; `waiting`: the program waits before main for the
   * verdict; `preload`: whether the library reported it (an evasion is a finding).
   */
  controls: (event: ProcessEvent, waiting: boolean, preload: PreloadStatus | undefined) => StageResult;
  now: () => number;
  /** How long a poller event waits for a report that is due. */
  graceMs?: number;
}

/** Whose sight of an exec image came first. */
type Sight = "reported" | "polled";

/** A poller exec event waiting for its report. */
interface Held {
  kind: "held";
  fingerprint: string;
  /** The event with a copy of the process as it was then (the live one moves on). */
  event: ProcessEvent;
  until: number;
  /** The expire call (see turns) that first found it past `until`. */
  overdueSince?: number;
  /** The facts that would have said "not reported" were read in full. */
  factsComplete: boolean;
  /** The poller did not see which program ran (a fork that died, a zombie): a report replaces it. */
  replaceable: boolean;
  /** reported: with the report's status; settled: decided without one (overdue, or /proc told); replaced by a report's program. */
  outcome?: { kind: "reported"; preload: PreloadStatus; waiting: boolean } | { kind: "settled"; preload?: PreloadStatus } | { kind: "replaced" };
}

/** An exit waiting behind a held exec of the same process. */
interface HeldExit {
  kind: "exit";
  event: ProcessEvent;
}

interface Known {
  images: Map<string, Sight>;
  /** The image the process runs now, as far as either sensor knows. */
  current?: string;
  /** Set when the process exited: the entry stays knownAfterExitMs for reports still in flight. */
  exitedAt?: number;
}

const defaultGraceMs = 500;
/** Expire calls (each in a later event-loop turn) a held event waits past its deadline. */
const overdueTurns = 2;
/**
 * How long an exited process's images are remembered: a report handled later than this (its
 * process long gone, the sidecar far behind) would be taken for an exec never seen.
 */
const knownAfterExitMs = 10_000;
/** Processes remembered at most (each a few hundred bytes); the oldest are forgotten first. */
const maxKnown = 65_536;
/** Exited processes are forgotten at least this often while new ones come (expire runs only while something waits). */
const forgetIntervalMs = 1000;

const keyOf = (pid: number, startTicks: number): string => `${pid}:${startTicks}`;

/** The records of a step, those built late built now, in order. */
export function builtRecords(records: StageResult["records"]): SensorRecord[] {
  return records.flatMap((r) => (typeof r === "function" ? (r() ?? []) : [r]));
}

function empty(): StageResult {
  return { records: [], problems: [] };
}

function merge(into: StageResult, from: StageResult): StageResult {
  into.records.push(...from.records);
  into.problems.push(...from.problems);
  if (from.deny !== undefined) into.deny ??= from.deny;
  return into;
}

export class CompleteMode {
  private readonly deps: CompleteModeDeps;
  private readonly known = new Map<string, Known>();
  private readonly queues = new Map<string, Array<Held | HeldExit>>();
  /** Processes created before the report socket listened were not started under its watch. */
  private since = Infinity;
  /** Expire calls so far: the timer that makes them runs once per event-loop turn at most. */
  private turns = 0;
  private lastForget = 0;

  constructor(deps: CompleteModeDeps) {
    this.deps = deps;
  }

  /** From now on, new processes are expected to report (the socket listens). */
  start(at: number): void {
    this.since = at;
  }

  private get on(): boolean {
    return this.deps.policy.current.spec.forensics.preload && this.since !== Infinity;
  }

  /** Whether the poller itself saw this process run this image: a report of it says nothing it did not. */
  polled(snapshot: ProcSnapshot): boolean {
    return this.known.get(keyOf(snapshot.pid, snapshot.startTicks))?.images.get(snapshot.fingerprint) === "polled";
  }

  /** Before the tracker: whether a poller snapshot only repeats an exec the library reported. */
  repeatsReport(snapshot: ProcSnapshot): boolean {
    const images = this.known.get(keyOf(snapshot.pid, snapshot.startTicks))?.images ?? new Map<string, Sight>();
    return [...images].some(([image, sight]) => sight === "reported" && sameImage(image, snapshot.fingerprint));
  }

  /**
   * A report, before the tracker: `new` when no sensor has this exec yet (the caller feeds
   * the tracker, then `records` with the report); `merged` when it completes a poller event
   * that waited for it (its controls and records are in `result`, with the verdict);
   * `repeat` when it adds nothing to record. `current`: the report describes the image the
   * process runs now (the caller may add its facts).
   */
  reported(snapshot: ProcSnapshot, preload: PreloadStatus, waiting: boolean): { kind: "new" | "merged" | "repeat"; current: boolean; result: StageResult } {
    const key = keyOf(snapshot.pid, snapshot.startTicks);
    const known = this.entry(key);
    // The poller's look may have missed the exe (the process exited between its reads): the same exec still.
    const seen = [...known.images.keys()].find((image) => sameImage(image, snapshot.fingerprint));
    const sight = seen === undefined ? undefined : known.images.get(seen);
    known.images.set(snapshot.fingerprint, "reported");
    if (seen !== undefined && known.current === seen) known.current = snapshot.fingerprint;
    const queue = this.queues.get(key) ?? [];
    const open = (h: Held | HeldExit): h is Held => h.kind === "held" && h.outcome === undefined;
    const held = queue.find((h): h is Held => open(h) && sameImage(h.fingerprint, snapshot.fingerprint));
    this.supersede(queue, held);
    if (held !== undefined) {
      held.outcome = { kind: "reported", preload, waiting };
      addReported(held.event.process, snapshot);
      return { kind: "merged", current: known.current === snapshot.fingerprint, result: this.drain(key) };
    }
    const unseen = sight === undefined ? queue.find((h): h is Held => open(h) && h.replaceable) : undefined;
    if (unseen !== undefined) unseen.outcome = { kind: "replaced" };
    const result = unseen === undefined ? empty() : this.drain(key);
    if (sight !== undefined) return { kind: "repeat", current: known.current === snapshot.fingerprint, result };
    known.current = snapshot.fingerprint;
    return { kind: "new", current: true, result };
  }

  /**
   * The controls and records of a process event from the tracker: at once, or once the
   * report due for it came or is overdue. `fingerprint`: the exec image the event shows;
   * `report`: the report it came from, when it came from one.
   */
  records(event: ProcessEvent, fingerprint: string | undefined, report?: { preload: PreloadStatus; waiting: boolean }): StageResult {
    const p = event.process;
    const key = keyOf(p.pid, p.startTicks);
    const queue = this.queues.get(key);
    if (event.kind === "exit") {
      const known = this.known.get(key);
      if (known !== undefined) known.exitedAt = this.deps.now();
      if (queue === undefined) return this.run(event, false, undefined);
      queue.push({ kind: "exit", event });
      return empty();
    }
    if (!this.on) return this.run(event, false, undefined);
    if (report !== undefined) return this.run(event, report.waiting, report.preload);
    if (fingerprint !== undefined) {
      const known = this.entry(key);
      known.images.set(fingerprint, "polled");
      known.current = fingerprint;
    }
    const replaceable = p.image === "exec-unseen" || (p.exe === undefined && (p.args ?? []).length === 0);
    if (fingerprint === undefined || (!replaceable && !this.expectsReport(p))) return this.now(key, event, undefined);
    const facts = replaceable ? {} : this.deps.readFacts(p.pid, fingerprint);
    const reason = replaceable ? undefined : absenceReason(facts, p, this.deps.setup);
    if (reason !== undefined) return this.now(key, event, this.absence(p, reason));
    const held: Held = {
      kind: "held",
      fingerprint,
      event: { ...event, process: { ...p, container: { ...p.container } } },
      until: this.deps.now() + (this.deps.graceMs ?? defaultGraceMs),
      factsComplete: facts.environ !== undefined && facts.linking !== undefined,
      replaceable,
    };
    if (queue === undefined) this.queues.set(key, [held]);
    else queue.push(held);
    return empty();
  }

  /**
   * The process reported a later image: what the poller saw it run before (up to `held`, the
   * sight this report completes, or all when none does) waits no longer. A report of it would
   * have come first (a program reports before its main can exec anything), so none is coming:
   * it was a fork still showing its parent's program (a rescan cannot tell a fork from an
   * exec of the same program), or its report was lost. No claim is made either way. Above all,
   * a program waiting before main for its verdict must not wait behind it.
   */
  private supersede(queue: ReadonlyArray<Held | HeldExit>, held: Held | undefined): void {
    for (const h of queue) {
      if (h === held) return;
      if (h.kind === "held" && h.outcome === undefined && !h.replaceable) h.outcome = { kind: "settled" };
    }
  }

  /** Poller events wait for their reports: expire() has work. */
  get hasWaiting(): boolean {
    return this.queues.size > 0;
  }

  /** What waited for a report now overdue (everything, when `final`); forgets exited processes. */
  expire(final = false): StageResult {
    const now = this.deps.now();
    const turn = ++this.turns;
    const result = empty();
    for (const [key, queue] of this.queues) {
      for (const h of queue) {
        if (h.kind !== "held" || h.outcome !== undefined || (!final && h.until > now)) continue;
        h.overdueSince ??= turn;
        if (!final && turn - h.overdueSince < overdueTurns) continue;
        const preload = h.replaceable ? undefined : this.absence(h.event.process, h.factsComplete ? "not-reported" : "unknown");
        h.outcome = { kind: "settled", ...(preload !== undefined && { preload }) };
      }
      merge(result, this.drain(key));
    }
    this.forgetExited(now);
    return result;
  }

  /** Exited processes past knownAfterExitMs, with nothing of theirs waiting. */
  private forgetExited(now: number): void {
    this.lastForget = now;
    for (const [key, known] of this.known) if (known.exitedAt !== undefined && now - known.exitedAt > knownAfterExitMs && !this.queues.has(key)) this.known.delete(key);
  }

  /** A report may come: an exec of a program started under the library's watch. */
  private expectsReport(p: ProcessInfo): boolean {
    return p.image === "exec" && p.detection !== "startup" && creationTimeMs(this.deps.clock, p.startTicks) >= this.since;
  }

  /**
   * Absent, said only of a process of an app container: the injector gives each its name and
   * the library together (a process that dropped its environment keeps its parent's
   * container). Elsewhere (the pod's pause, the injector's own installer) nothing was promised.
   */
  private absence(p: ProcessInfo, reason: AbsenceReason): PreloadStatus | undefined {
    return p.container.name === undefined ? undefined : absent(reason);
  }

  /** Controls and record of an event at once, unless events of the same process wait: then behind them. */
  private now(key: string, event: ProcessEvent, preload: PreloadStatus | undefined): StageResult {
    const queue = this.queues.get(key);
    if (queue === undefined) return this.run(event, false, preload);
    queue.push({ kind: "held", fingerprint: "", event, until: 0, factsComplete: true, replaceable: false, outcome: { kind: "settled", ...(preload !== undefined && { preload }) } });
    return empty();
  }

  /** The controls of an event, then its record (with the report's status, or why none came), built when taken. */
  private run(event: ProcessEvent, waiting: boolean, preload: PreloadStatus | undefined): StageResult {
    const result = this.deps.controls(event, waiting, preload);
    const { forensics } = this.deps.policy.current.spec;
    result.records.unshift(() => processRecord(event, this.deps.clock, forensics, preload));
    return result;
  }

  /** Settles the front of a process's queue up to the first event still waiting for its report. */
  private drain(key: string): StageResult {
    const queue = this.queues.get(key);
    const result = empty();
    if (queue === undefined) return result;
    let replaced = false;
    while (queue.length > 0) {
      const h = queue[0]!;
      if (h.kind === "exit") {
        // A replaced fork's exit comes again with the reported program's (the poller adopts it).
        if (!replaced) merge(result, this.run(h.event, false, undefined));
      } else if (h.outcome === undefined) {
        break;
      } else if (h.outcome.kind === "replaced") {
        replaced = true;
      } else {
        merge(result, this.run(h.event, h.outcome.kind === "reported" && h.outcome.waiting, h.outcome.preload));
      }
      queue.shift();
    }
    if (queue.length === 0) this.queues.delete(key);
    return result;
  }

  private entry(key: string): Known {
    let known = this.known.get(key);
    if (known === undefined) {
      // New processes, and no expire call may come (nothing waits): forget the exited here.
      const now = this.deps.now();
      if (now - this.lastForget >= forgetIntervalMs) this.forgetExited(now);
      if (this.known.size >= maxKnown) this.known.delete(this.known.keys().next().value!);
      known = { images: new Map() };
      this.known.set(key, known);
    }
    return known;
  }
}
