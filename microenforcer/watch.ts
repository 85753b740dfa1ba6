/**
 * The MicroEnforcer runtime, and the top of the sidecar's layers: the capture worker
 * (capture/, reading /proc through proc/ and net/) posts events; on the main thread the
 * pipeline (pipeline/) turns each into process facts (tracker/), runs the policy's controls
 * and enforcement (policy/, enforce/) and builds the records the policy allows (records/),
 * which the sink (emit/, spooling through spool/) sends on. The policy is held in one
 * PolicyHolder; what must act on a reload subscribes here. The sidecar and `microenforcer
 * watch` are this one program. test/unit/layering.test.ts holds the layers' order.
 */
import { randomInt } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { heartbeatSeconds, type RuntimePolicy } from "../policies/schema.ts";
import { defaultCaptureOptions, type CaptureOptions } from "./capture/capture-loop.ts";
import { AllowTable, maxAllowEntries } from "./capture/allow-table.ts";
import { ExecReportServer, readLibraryMode, writeLibraryMode, type LibraryMode, type ReportServerOptions } from "./capture/exec-report-server.ts";
import { libraryMachine, libraryMode } from "./capture/preload-library.ts";
import { readLastPid } from "./capture/pid-trigger.ts";
import { ProcessSensor } from "./capture/process-sensor.ts";
import type { CaptureEvent } from "./capture/events.ts";
import type { DeliveryStats } from "./emit/delivery.ts";
import { createEnforcer, type Enforcer } from "./enforce/kill.ts";
import { RunStateFile } from "./lifecycle/run-state-file.ts";
import { DnsService } from "./net/dns-service.ts";
import { ReportsFirst } from "./pipeline/reports-first.ts";
import { WatchPipeline } from "./pipeline/watch-pipeline.ts";
import { networkSensorNeeded, stdioNeeded, type PolicyHolder } from "./policy/policy-holder.ts";
import { creationTimeMs, monotonicNow, readBootClock, type BootClock } from "./proc/boot-clock.ts";
import { readPreloadFacts } from "./proc/preload-facts.ts";
import { readScript, readStdio } from "./proc/process-facts.ts";
import { execFingerprint, readAccessDenial } from "./proc/reader.ts";
import type { SensorRecord } from "./records/record.ts";
import {
  allowTableFullRecord,
  allowTableRecord,
  forwarderRecord,
  heartbeatRecord,
  policyStatusRecord,
  preloadModeChangedRecord,
  preloadModeRecord,
  preloadProblemRecord,
  preloadSocketRecord,
  previousRunRecord,
  runStateProblemRecord,
} from "./records/sensor-records.ts";
import { EXEC_SOCKET_ENV, PRELOAD_LIBRARY_FILE } from "./sidecar-contract.ts";
import { preloadVerdict, type PreloadSetup } from "./tracker/preload-status.ts";

export interface RecordSink {
  emit(record: SensorRecord): void;
  /** Delivery counters, for the heartbeat's records lost (none without). */
  stats?(): DeliveryStats;
}

export interface WatchOptions {
  /** The policy in force; a new one set there applies from the next event on. */
  policy: PolicyHolder;
  sink: RecordSink;
  capture?: Partial<CaptureOptions>;
  selfPid?: number;
  /**
   * Complete mode: the unix socket the preload library reports to (MICROENFORCER_EXEC_SOCKET
   * of the app containers), in the directory that holds the library and its mode file.
   */
  execSocket?: string;
  /** Container name → the image it was admitted with (the injector's workload variable). */
  containerImages?: Readonly<Record<string, string>>;
  /** Container name → its exec probes' argv (the injector's workload variable). */
  probes?: Readonly<Record<string, readonly string[][]>>;
  /** The sidecar's emptyDir: the run-state file that tells the next run whether this one was killed. */
  stateDir?: string;
}

export interface Watch {
  /** Resolves once the sensor has taken its first look: from then on new processes are seen starting. */
  watching: Promise<void>;
  stop(): Promise<void>;
}

/** How often what waits (live interpreters' stdio, events awaiting a report or a name) is looked at again. */
const recheckIntervalMs = 50;
/** How often the run-state file is rewritten: the precision of the next run's blind.since. */
const aliveIntervalMs = 1000;
/** A report handled this long after the mode turned to enforce was sent by a library that read it (it reads the mode at exec). */
const modeSettleMs = 1000;
/**
 * A waiting report taken this close to the end of the library's wait is late: a verdict might
 * reach it after it went on by the failure choice (start times are in 10 ms ticks, and a busy
 * sidecar takes a while from here to the answer). A kill stops it either way.
 */
const lateWithinMs = 50;

export function startWatch(options: WatchOptions): Watch {
  const selfPid = options.selfPid ?? process.pid;
  const capture = { ...defaultCaptureOptions, selfPid, ...options.capture };
  const procRoot = capture.procRoot;
  const dns = new DnsService();
  const { policy, execSocket } = options;
  const startedAt = Date.now();
  let emitted = 0;
  const sink: RecordSink = {
    emit(record) {
      emitted++;
      options.sink.emit(record);
    },
  };
  const enforcer = createEnforcer(procRoot);
  const library = execSocket === undefined ? undefined : join(dirname(execSocket), PRELOAD_LIBRARY_FILE);
  // Complete mode only where the injector delivered the library (forensics.preload at admission).
  const delivered = library !== undefined && existsSync(library);
  const setup: PreloadSetup | undefined = delivered ? { socket: execSocket!, library, machine: libraryMachine() } : undefined;
  const clock = readBootClock(procRoot);
  const pipeline = new WatchPipeline(policy, {
    clock,
    selfPid,
    facts: { stdio: (pid) => readStdio(pid, procRoot), denial: (pid) => readAccessDenial(pid, procRoot) },
    enforcer,
    now: monotonicNow,
    names: () => dns.names(),
    containerImages: options.containerImages ?? {},
    probes: options.probes ?? {},
    ...(setup !== undefined && {
      preload: {
        setup,
        readFacts: (pid: number, fingerprint: string) => readPreloadFacts(pid, fingerprint, EXEC_SOCKET_ENV, procRoot),
        readScript: (pid: number, path: string) => readScript(pid, path, procRoot),
      },
    }),
  });
  const emitAll = (records: SensorRecord[]): void => {
    for (const record of records) sink.emit(record);
  };
  sink.emit(policyStatusRecord(policy.current, "microenforcer watching this PID namespace with policy", policy.source));
  const lives = options.stateDir === undefined ? undefined : keepRunState(options.stateDir, procRoot, startedAt, selfPid, sink);
  let interval = heartbeatSeconds(policy.current.spec);
  const heartbeat = () => {
    const stats = options.sink.stats?.();
    const counts = { ...pipeline.seen(), recordsEmitted: emitted, recordsLost: (stats?.dropped ?? 0) + (stats?.rejected ?? 0) };
    sink.emit(heartbeatRecord(counts, startedAt, interval, Date.now()));
  };
  let heartbeats = setInterval(heartbeat, interval * 1000);
  if (library !== undefined && !delivered) sink.emit(preloadSocketRecord(execSocket!, `no preload library at ${library} (not delivered to this pod)`));
  // Applied in order, so a quick reload cannot overtake a forwarder still starting.
  const applyDns = (next: RuntimePolicy): Promise<void> => dns.apply(next).then((outcomes) => emitAll(outcomes.map(forwarderRecord)));
  let dnsApplied = applyDns(policy.current);
  let markWatching!: () => void;
  const firstLook = new Promise<void>((resolve) => (markWatching = resolve));
  // Rechecks run while something waits, and not at all while nothing does: an idle
  // sidecar's main thread sleeps until the next event instead of waking 20 times a second.
  let recheckTimer: NodeJS.Timeout | undefined;
  const armRecheck = (): void => {
    if (recheckTimer !== undefined || !pipeline.hasWaiting) return;
    recheckTimer = setTimeout(() => {
      recheckTimer = undefined;
      emitAll(pipeline.recheck());
      armRecheck();
    }, recheckIntervalMs);
  };
  // A program waiting for its verdict goes before the poller's sight of it (reports-first.ts).
  const reportsFirst = new ReportsFirst<CaptureEvent[]>((events) => {
    for (const event of events) emitAll(pipeline.handle(event));
    armRecheck();
    // The worker's first batch is its first look (CaptureLoop.start).
    markWatching();
  });
  const sensor = new ProcessSensor(
    capture,
    (events) => reportsFirst.offer(events, reports?.reportOnItsWay() ?? false),
    { network: networkSensorNeeded(policy.current), stdio: stdioNeeded(policy.current) },
  );
  policy.subscribe((next, source) => {
    sensor.setNetwork(networkSensorNeeded(next));
    sensor.setStdio(stdioNeeded(next));
    dnsApplied = dnsApplied.then(() => applyDns(next));
    sink.emit(policyStatusRecord(next, "policy reloaded:", source));
    armRecheck();
    if (heartbeatSeconds(next.spec) !== interval) {
      interval = heartbeatSeconds(next.spec);
      clearInterval(heartbeats);
      heartbeats = setInterval(heartbeat, interval * 1000);
    }
  });
  // The socket listens once the first look is done: every process that can report since was
  // either alive then or got its PID later, which is what a report of a gone one is held against.
  const reports = setup === undefined ? undefined : startReports(setup.socket, firstLook, policy, pipeline, sensor, enforcer, procRoot, clock, sink, armRecheck, () => reportsFirst.flush());
  return {
    // Watching once both sensors are on: an app started earlier would find no socket.
    watching: reports === undefined ? firstLook : reports.listening,
    async stop() {
      clearTimeout(recheckTimer);
      clearInterval(heartbeats);
      await reports?.close();
      await sensor.stop();
      reportsFirst.flush();
      emitAll(pipeline.recheck(true));
      await dnsApplied;
      await dns.stop();
      lives?.stop();
    },
  };
}

/**
 * The run-state file: what the previous run left said now, this run's kept every second
 * (a write that fails is said once; the sensor goes on).
 */
function keepRunState(dir: string, procRoot: string, startedAt: number, selfPid: number, sink: RecordSink): { stop(): void } {
  const file = new RunStateFile(dir, procRoot, startedAt, selfPid);
  if (file.previous !== undefined) sink.emit(previousRunRecord(file.previous));
  let failed = false;
  const write = (how: (now: number) => void): void => {
    try {
      how(Date.now());
    } catch (err) {
      if (!failed) sink.emit(runStateProblemRecord(dir, (err as Error).message));
      failed = true;
    }
  };
  write((now) => file.alive(now));
  const timer = setInterval(() => write((now) => file.alive(now)), aliveIntervalMs);
  return {
    stop() {
      clearInterval(timer);
      write((now) => file.stopped(now));
    },
  };
}

/**
 * Complete mode's socket: the mode file kept in step with the policy, reports through the
 * pipeline, verdicts back, and the reporters adopted by the capture loop. A denied program
 * that did not stop itself (its wait timed out meanwhile) is killed once it hangs up.
 */
function startReports(
  socket: string,
  firstLook: Promise<void>,
  policy: PolicyHolder,
  pipeline: WatchPipeline,
  sensor: ProcessSensor,
  enforcer: Enforcer,
  procRoot: string,
  clock: BootClock,
  sink: RecordSink,
  armRecheck: () => void,
  onSettled: () => void,
): { listening: Promise<void>; reportOnItsWay(): boolean; close(): Promise<void> } {
  const table = new AllowTable(socket, (err) => sink.emit(allowTableRecord(socket, err.message)));
  let fullSaid = false;
  // Unique per run and policy: a table an earlier run left in the volume is never taken for this one's.
  let generation = randomInt(1, 2 ** 31);
  // Since when the mode has said enforce (Infinity: it does not): a library that read it before
  // may still report unasked. The first mode is written before the socket listens.
  let enforcingSince = libraryMode(policy.current).enforce ? -Infinity : Infinity;
  // What the mode file should say, as last written: one that says otherwise was changed under the sidecar.
  let mode: LibraryMode;
  let modeText: string | undefined;
  const writeMode = (): void => {
    try {
      modeText = writeLibraryMode(socket, mode);
    } catch (err) {
      sink.emit(preloadModeRecord(socket, (err as Error).message));
    }
  };
  const apply = (next: RuntimePolicy): void => {
    sensor.setPreload(next.spec.forensics.preload);
    const enforce = libraryMode(next).enforce;
    if (!enforce) enforcingSince = Infinity;
    else if (enforcingSince === Infinity) enforcingSince = Date.now();
    generation = (generation % 0xffff_fffe) + 1;
    fullSaid = false;
    let tabled = true;
    try {
      table.reset(generation);
    } catch (err) {
      tabled = false;
      sink.emit(allowTableRecord(socket, (err as Error).message));
    }
    mode = { ...libraryMode(next), ...(tabled && { generation }) };
    writeMode();
  };
  apply(policy.current);
  policy.subscribe(apply);
  const options: ReportServerOptions = {
    socketPath: socket,
    procRoot,
    allocation: (pid, startTicks) => sensor.history.judge(pid, startTicks, clock, readLastPid(procRoot)),
    onReport: (report, check) => {
      // The reported executable as the allow table names it: its identity and the path it ran by.
      const entry = report.exeKey === undefined ? undefined : { ...report.exeKey, path: Buffer.from(report.exeLink) };
      const enforcing = libraryMode(policy.current).enforce && Date.now() - enforcingSince >= modeSettleMs;
      // The library waits timeoutMs from its start: near its end or past it, a verdict may come too late.
      const pastWait = report.wait && monotonicNow() > creationTimeMs(clock, report.startTicks) + mode.timeoutMs - lateWithinMs;
      const tableHolds = entry !== undefined && table.holds(entry, { ...report, ppid: check.ppid ?? report.ppid });
      const verdict = preloadVerdict(report, tableHolds, enforcing, pastWait);
      const result = pipeline.handleReport(report, check, verdict);
      // The verdict goes out first (the program waits for it); the records are built, and
      // the capture worker told, right after.
      queueMicrotask(() => {
        for (const record of result.records()) sink.emit(record);
        armRecheck();
        sensor.adopt(report.pid, report.startTicks, execFingerprint(report.exeLink, report.rawArgs.toString("latin1")));
        // Its library read another mode: if it was the sidecar's file, it was changed under it.
        const found = verdict === "unasked" ? readLibraryMode(socket) : modeText;
        if (found !== modeText) {
          sink.emit(preloadModeChangedRecord(socket, found));
          writeMode();
        }
        // Allowed before main, and allowed however it runs (a shell: as a plain command; an interpreter: its inline code): asked about no more.
        if (entry !== undefined && report.wait && result.verdict.allow) {
          const runs = pipeline.allowsStanding(report);
          if (runs !== undefined && !table.add({ ...entry, ...(runs !== "any" && { runs }) }) && !fullSaid) {
            fullSaid = true;
            sink.emit(allowTableFullRecord(socket, maxAllowEntries));
          }
        }
      });
      const { denied } = result;
      return { verdict: result.verdict, ...(denied !== undefined && { whenClosed: () => enforcer.kill(denied.pid, denied.startTicks) }) };
    },
    onProblem: (problem) => sink.emit(preloadProblemRecord(problem)),
    onSettled,
  };
  let closing = false;
  let server: ExecReportServer | undefined;
  const listening = firstLook.then(() => {
    if (closing) return;
    server = new ExecReportServer(options);
    return server.ready().then(
      () => {
        pipeline.startReports(Date.now());
        sink.emit(preloadSocketRecord(socket));
      },
      (err: Error) => sink.emit(preloadSocketRecord(socket, `cannot listen on ${socket}: ${err.message}`)),
    );
  });
  return {
    listening,
    reportOnItsWay: () => server?.reportOnItsWay() ?? false,
    close: async () => {
      closing = true;
      await server?.close();
      table.close();
    },
  };
}
