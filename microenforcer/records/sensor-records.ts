/** Records in which the sensor speaks about itself: its blind spots, its health, the policy it runs. */
import type { GapReport } from "../capture/events.ts";
import type { ReportProblem } from "../capture/exec-report-server.ts";
import type { PreviousRun } from "../lifecycle/run-state.ts";
import type { ForwarderOutcome } from "../net/dns-service.ts";
import type { AccessDenial } from "../proc/access.ts";
import type { ReadProblem } from "../proc/reader.ts";
import type { RuntimePolicy } from "../../policies/schema.ts";
import type { DocumentSource } from "../../policies/signed-document.ts";
import { Attr, type Attributes } from "./attributes.ts";
import { EventNames, type SensorRecord, type Severity } from "./record.ts";

export function gapRecord(gap: GapReport): SensorRecord {
  const attributes: Attributes = { [Attr.gapKind]: gap.kind, [Attr.gapCount]: gap.count };
  if (gap.kind === "pid") {
    Object.assign(attributes, { [Attr.gapFirstPid]: gap.firstPid, [Attr.gapLastPid]: gap.lastPid });
    if (gap.late !== undefined) attributes[Attr.gapLate] = gap.late;
    if (gap.backlogPeak !== undefined) attributes[Attr.gapBacklogPeak] = gap.backlogPeak;
  }
  attributes[Attr.gapSince] = new Date(gap.since).toISOString();
  attributes[Attr.gapUntil] = new Date(gap.until).toISOString();
  const what =
    gap.kind === "pid"
      ? "PIDs (processes or threads) lived and exited between two looks"
      : "TCP connection ends (or connection attempts) were opened and gone between two looks at the socket tables";
  // A pod can fork a burst on purpose, to hide what it runs meanwhile: the record says so.
  const burst =
    gap.kind === "pid" && gap.late !== undefined
      ? `; ${gap.late} of them were gone before their turn came while the sensor read a burst of new PIDs${gap.backlogPeak === undefined ? "" : ` (up to ${gap.backlogPeak} waiting)`}`
      : "";
  return { eventName: EventNames.sensorGap, severity: "WARN", body: `${gap.count} ${what} and were not observed${burst}`, attributes, timestamp: gap.until };
}

function statusRecord(severity: Severity, body: string, attributes: Attributes = {}): SensorRecord {
  const now = Date.now();
  return { eventName: EventNames.sensorStatus, severity, body, attributes, timestamp: now };
}

const consequence: Record<ReadProblem["file"], string> = {
  exe: "executable paths are missing",
  cmdline: "command lines are missing",
  environ: "container attribution falls back to the cgroup",
  cgroup: "container ids are missing",
  status: "user ids are missing",
  stat: "such processes are invisible",
  fd: "reverse shells cannot be detected",
  cwd: "working directories are missing",
  script: "the identity and times of scripts interpreters run are missing (drift cannot be decided for them)",
};

/** The cause of a refusal in words, and what would lift it. */
function denialText(denial: AccessDenial | undefined): string {
  const ids = (who: { uid: number; gid: number }) => `UID ${who.uid} GID ${who.gid}`;
  switch (denial?.cause) {
    case undefined:
      return " Run the sidecar with the app's UID, GID and capabilities, or grant CAP_SYS_PTRACE where the platform allows it.";
    case "uid":
    case "gid":
      return (
        ` Cause: they run as ${ids(denial.target)}, the sidecar as ${ids(denial.reader)}; the kernel lets only the same ${denial.cause === "uid" ? "user" : "group"} read them.` +
        " Fix: run the sidecar with their UID and GID (the injector gives it the first container's runAsUser and runAsGroup, or root where none is declared), or grant CAP_SYS_PTRACE where the platform allows it."
      );
    case "capabilities":
      return (
        ` Cause: they hold capabilities the sidecar lacks (${denial.missing.join(", ")}); the kernel lets a process read another only with all of its capabilities.` +
        " Fix: let the sidecar keep them (the injector keeps the runtime's default and what the app's root containers add, as far as the namespace's Pod Security level allows; never a privileged container's), or drop them from the app's container."
      );
    case "not-dumpable":
      return (
        " Cause: they changed their user or group ids after starting (a server dropping root for its workers), so the kernel lets only CAP_SYS_PTRACE read them." +
        " Fix: none short of CAP_SYS_PTRACE; their command lines, users and containers are still recorded."
      );
    case "other":
      return " Cause: the sidecar has CAP_SYS_PTRACE, so a security module (AppArmor, SELinux, Yama) refused. Fix: that module's profile.";
  }
}

/** A /proc file the sensor may not read, said once per cause with what it costs, why, and the fix. */
export function readProblemRecord(problem: ReadProblem, pid: number): SensorRecord {
  const denied = problem.code === "EACCES" || problem.code === "EPERM";
  const attributes: Attributes = {
    [Attr.statusCause]: readProblemCause(problem),
    [Attr.processUserId]: problem.uid,
    [Attr.processPid]: pid,
  };
  if (problem.denial !== undefined) attributes[Attr.accessDenial] = problem.denial.cause;
  if (problem.denial?.cause === "capabilities") attributes[Attr.accessMissingCapabilities] = problem.denial.missing;
  return statusRecord(
    "WARN",
    `cannot read /proc/PID/${problem.file} (${problem.code}) of processes of uid ${problem.uid}: ${consequence[problem.file]}.${denied ? denialText(problem.denial) : ""}`,
    attributes,
  );
}

/** One report per file, error, uid and cause: bounded, and says which users' processes are affected and why. */
export function readProblemCause(problem: ReadProblem): string {
  const base = `${problem.file}:${problem.code}:${problem.uid}`;
  return problem.denial === undefined ? base : `${base}:${problem.denial.cause}`;
}

/** What became of the DNS forwarder the policy asked for. */
export function forwarderRecord(outcome: ForwarderOutcome): SensorRecord {
  switch (outcome.kind) {
    case "listening":
      return statusRecord(
        "INFO",
        `DNS forwarder listening on ${outcome.listen} (UDP and TCP), upstream ${outcome.upstream.join(", ")}; ${outcome.names ? "connections are named from its answers" : "names off by policy: a transparent relay for the pod's resolver"}`,
        { [Attr.dnsListen]: outcome.listen, [Attr.dnsUpstream]: outcome.upstream, [Attr.dnsNames]: outcome.names },
      );
    case "not-asked":
      // Evidence too: a pod created with its own dnsPolicy or dnsConfig keeps its lookups from the sidecar.
      return statusRecord(
        "WARN",
        `DNS forwarder not started: the pod's resolver (${outcome.resolvConf}: ${outcome.nameservers.length > 0 ? `nameserver ${outcome.nameservers.join(", ")}` : "no nameserver"}) does not ask ${outcome.listen}, so connections carry no names`,
        { [Attr.dnsListen]: outcome.listen, [Attr.dnsNameservers]: outcome.nameservers },
      );
    case "refused":
      return statusRecord("ERROR", `DNS forwarder not started: ${outcome.problem}`);
    case "listen-failed":
      return statusRecord("ERROR", `DNS forwarder could not listen on ${outcome.listen}: ${outcome.error}`, { [Attr.dnsListen]: outcome.listen });
  }
}

/** How the process sensor finds new PIDs: the ns_last_pid trigger, or (without it) /proc scans. */
export function triggerRecord(mode: "ns_last_pid" | "scan", reason?: string): SensorRecord {
  return mode === "ns_last_pid"
    ? statusRecord("INFO", "process sensor triggered by /proc/sys/kernel/ns_last_pid", { [Attr.sensorTrigger]: mode })
    : statusRecord("WARN", `process sensor falls back to scanning /proc: ${reason ?? ""}`, { [Attr.sensorTrigger]: mode });
}

export function sensorErrorRecord(message: string): SensorRecord {
  return statusRecord("ERROR", `process sensor error: ${message}`);
}

/** Lines of /proc/net/{tcp,udp}[6] the parser could not read (said once). */
export function malformedTablesRecord(lines: number): SensorRecord {
  return statusRecord("WARN", `network sensor: ${lines} unparseable lines in /proc/net/{tcp,udp}[6] (skipped)`);
}

/** The policy in force: at start (`what` says so) and after each reload, with the document it came from when read from one. */
export function policyStatusRecord(policy: RuntimePolicy, what: string, source?: DocumentSource): SensorRecord {
  const generation = policy.metadata.generation;
  return statusRecord("INFO", `${what} ${policy.metadata.name}${generation === undefined ? "" : ` (generation ${generation})`}, ${policy.spec.enforcementMode} mode`, {
    [Attr.policyName]: policy.metadata.name,
    [Attr.policyMode]: policy.spec.enforcementMode,
    ...(generation !== undefined && { [Attr.policyGeneration]: generation }),
    ...(source !== undefined && { [Attr.policyDigest]: source.digest, [Attr.policySigner]: source.signer }),
  });
}

/** A reloaded policy file that is invalid or does not verify: every problem, and the policy that stays. */
export function policyRejectedRecord(inForce: RuntimePolicy, problems: readonly string[], source?: DocumentSource): SensorRecord {
  return statusRecord("ERROR", `new policy rejected, the previous one stays in force:\n${problems.join("\n")}`, {
    [Attr.policyName]: inForce.metadata.name,
    ...(source !== undefined && { [Attr.policyDigest]: source.digest, [Attr.policySigner]: source.signer }),
  });
}

/** The spool directory could not be used: records wait in memory only. */
/** The injector's workload variable could not be read: records go without what it would add. */
export function workloadUnreadableRecord(problem: string): SensorRecord {
  return statusRecord("WARN", `${problem}: records carry no workload, pod label, cluster or image attributes`);
}

/** The startupProbe's endpoint cannot listen: the kubelet will not start the app containers until it can. */
export function startedEndpointRecord(port: number, error: string): SensorRecord {
  return statusRecord("ERROR", `cannot answer the startup probe on port ${port}: ${error}; the kubelet starts the app containers only once it is answered`);
}

export function spoolUnusableRecord(problem: string, dir: string): SensorRecord {
  return statusRecord("WARN", problem, { [Attr.spoolDir]: dir });
}

export function spoolRecoveredRecord(records: number): SensorRecord {
  return statusRecord("INFO", `${records} record(s) spooled by a previous run are delivered first`, { [Attr.spoolRecovered]: records });
}

/** Complete mode: the report socket listens (`off` undefined), or complete mode is off and why. */
export function preloadSocketRecord(socket: string, off?: string): SensorRecord {
  return off === undefined
    ? statusRecord("INFO", `complete mode: preload reports on ${socket}`, { [Attr.preloadSocket]: socket })
    : statusRecord("WARN", `complete mode off: ${off}`, { [Attr.preloadSocket]: socket });
}

/** The library's mode file could not be written: programs then run in audit mode (no verdict awaited). */
export function preloadModeRecord(socket: string, error: string): SensorRecord {
  return statusRecord("ERROR", `cannot write the preload library's mode beside ${socket}: ${error}; programs run in audit mode`, { [Attr.preloadSocket]: socket });
}

/** The mode file was not what the sidecar wrote (someone reached the volume: /proc/PID/root); written again. */
export function preloadModeChangedRecord(socket: string, found: string | undefined): SensorRecord {
  const what = found === undefined ? "was gone" : `said ${JSON.stringify(found.trim().slice(0, 64))}`;
  return statusRecord("WARN", `the preload library's mode beside ${socket} ${what}, not what the sidecar wrote: written again; programs that read it went on without asking`, {
    [Attr.preloadSocket]: socket,
    [Attr.statusCause]: "preload-mode-changed",
  });
}

/** The allow table holds as many executables as it may: programs not in it keep waiting for their verdicts. */
export function allowTableFullRecord(socket: string, entries: number): SensorRecord {
  return statusRecord("INFO", `the preload library's allow table beside ${socket} is full (${entries} executables): other programs in enforce mode wait for every verdict until the policy changes`, {
    [Attr.preloadSocket]: socket,
    [Attr.statusCause]: "allow-table-full",
  });
}

export function allowTableRecord(socket: string, error: string): SensorRecord {
  return statusRecord("WARN", `cannot write the preload library's allow table beside ${socket}: ${error}; programs in enforce mode wait for every verdict`, { [Attr.preloadSocket]: socket });
}

/** Reports dropped (forged, over the rate limit, malformed): the first of a kind at once, then how many more. */
export function preloadProblemRecord(problem: ReportProblem): SensorRecord {
  const body = problem.count === 1 ? problem.detail : `${problem.count} more exec reports dropped as ${problem.kind} (the first: ${problem.detail})`;
  return statusRecord("WARN", body, { [Attr.preloadProblem]: problem.kind, [Attr.preloadDropped]: problem.count });
}

/** The previous run in this pod ended (killed or stopped) and this one started: how long nobody watched, and how much happened. */
export function previousRunRecord(previous: PreviousRun): SensorRecord {
  const iso = (ms: number) => new Date(ms).toISOString();
  if (previous.kind === "damaged") {
    return statusRecord("WARN", `the previous run's state file is damaged (${previous.problem}): the sidecar was restarted, for how long it was gone is unknown`, {
      [Attr.statusCause]: "previous-run-unknown",
      [Attr.blindUntil]: iso(previous.until),
    });
  }
  const seconds = Math.max(0, Math.round((previous.until - previous.since) / 1000));
  const pids = previous.pidCount === undefined ? "an unknown number of PIDs" : `${previous.pidCount} PIDs (processes or threads)`;
  const how =
    previous.kind === "unclean"
      ? "the previous run ended without a word (SIGKILL, a crash or the OOM killer)"
      : "the previous run was stopped by a signal and the sidecar started again, which in a pod only a kill by the app (same UID) or by an admin explains";
  const attributes: Attributes = {
    [Attr.statusCause]: previous.kind === "unclean" ? "previous-run-unclean" : "previous-run-stopped",
    [Attr.blindSince]: iso(previous.since),
    [Attr.blindUntil]: iso(previous.until),
  };
  if (previous.pidCount !== undefined) attributes[Attr.blindPidCount] = previous.pidCount;
  return statusRecord("WARN", `${how}: nothing was watched for ${seconds} s, while the pod handed out ${pids}`, attributes);
}

/**
 * The capture loop did not run for a while though it was due: stopped (SIGSTOP, which the app
 * may send, as it may SIGKILL), frozen, or starved of CPU. What lived and died meanwhile is
 * counted in the gap records that follow; this says why, and for how long.
 */
export function stallRecord(stall: { since: number; until: number; pidCount?: number }): SensorRecord {
  const seconds = ((stall.until - stall.since) / 1000).toFixed(1);
  const pids = stall.pidCount === undefined ? "an unknown number of PIDs" : `${stall.pidCount} PIDs (processes or threads)`;
  const attributes: Attributes = {
    [Attr.statusCause]: "sensor-stalled",
    [Attr.blindSince]: new Date(stall.since).toISOString(),
    [Attr.blindUntil]: new Date(stall.until).toISOString(),
  };
  if (stall.pidCount !== undefined) attributes[Attr.blindPidCount] = stall.pidCount;
  const body = `the sensor did not run for ${seconds} s (stopped with SIGSTOP, frozen, or starved of CPU): nothing was watched or enforced meanwhile, while the pod handed out ${pids}`;
  return statusRecord("WARN", body, attributes);
}

/** Someone with the capabilities to wrote ns_last_pid back: evidence, and what the sensor could not tell because of it. */
export function pidSetBackRecord(e: { count: number; since: number; until: number; lastPid: number }): SensorRecord {
  const attributes: Attributes = {
    [Attr.statusCause]: "pid-trigger-set-back",
    [Attr.pidSetBackCount]: e.count,
    [Attr.pidSetBackSince]: new Date(e.since).toISOString(),
    [Attr.pidSetBackUntil]: new Date(e.until).toISOString(),
  };
  const times = e.count === 1 ? "" : ` ${e.count} times`;
  const body =
    `ns_last_pid was set back${times} (to ${e.lastPid} last), which only a process with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the pod's PID namespace can do: ` +
    "processes that lived and died around it went uncounted, and preload reports of gone processes that claim to have started then could not be checked (recorded unverified)";
  return { ...statusRecord("WARN", body, attributes), timestamp: e.until };
}

/** What the sensor counted since its start, for the heartbeat. */
export interface SensorCounts {
  /** Processes seen start (or exec), recorded or not. */
  processes: number;
  /** Connections seen (listening sockets not counted). */
  connections: number;
  /** PIDs and connections that came and went unobserved (the gap records' counts). */
  gaps: number;
  /** Records this run handed to the exporter, and records it lost (dropped or refused for good by the backend). */
  recordsEmitted: number;
  recordsLost: number;
}

/** The periodic sign of life: a backend that misses two in a row knows the sensor is gone, not the pod quiet. */
export function heartbeatRecord(counts: SensorCounts, startedAt: number, intervalSeconds: number, now: number): SensorRecord {
  return {
    eventName: EventNames.sensorHeartbeat,
    severity: "INFO",
    body: `sensor alive: ${counts.processes} processes, ${counts.connections} connections, ${counts.gaps} unobserved, ${counts.recordsEmitted} records emitted, ${counts.recordsLost} lost since ${new Date(startedAt).toISOString()}`,
    attributes: {
      [Attr.sensorStarted]: new Date(startedAt).toISOString(),
      [Attr.heartbeatIntervalSeconds]: intervalSeconds,
      [Attr.heartbeatProcesses]: counts.processes,
      [Attr.heartbeatConnections]: counts.connections,
      [Attr.heartbeatGaps]: counts.gaps,
      [Attr.heartbeatRecordsEmitted]: counts.recordsEmitted,
      [Attr.heartbeatRecordsLost]: counts.recordsLost,
    },
    timestamp: now,
  };
}

/** The run-state file cannot be written: a kill of this run will leave no trace for the next one. */
export function runStateProblemRecord(dir: string, problem: string): SensorRecord {
  return statusRecord("WARN", `cannot keep the run-state file in ${dir} (${problem}): a restart after a kill will not say how long the sidecar was gone`, {
    [Attr.statusCause]: "run-state-unwritable",
  });
}
