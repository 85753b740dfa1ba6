/**
 * Process facts → SensorRecords, as the policy's forensics switches allow. Attribute
 * names follow the OTel process and container semantic conventions.
 */
import type { RuntimePolicySpec } from "../../policies/schema.ts";
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";
import { exitCodeOf, joinCommandLine } from "../proc/parse.ts";
import type { PreloadStatus } from "../tracker/preload-status.ts";
import { containerLabel, executableName, type ProcessEvent, type ProcessInfo } from "../tracker/process-tracker.ts";
import { imageAttributes } from "./container-image.ts";
import { Attr, type Attributes } from "./attributes.ts";
import { EventNames, type SensorRecord } from "./record.ts";
import { createRedactor, type Redactor } from "./redact.ts";

export type Forensics = RuntimePolicySpec["forensics"];

/** One redactor per policy: its patterns compiled once, its results cached per argv. */
const redactors = new WeakMap<Forensics, Redactor>();

function redactorFor(forensics: Forensics): Redactor {
  let redactor = redactors.get(forensics);
  if (redactor === undefined) {
    redactor = createRedactor(forensics.redaction?.patterns);
    redactors.set(forensics, redactor);
  }
  return redactor;
}

/** The attributes naming a process; shared by every record about it (exec, exit, network, violations). Secrets in its command line are redacted. */
export function processAttributes(p: ProcessInfo, clock: BootClock, forensics: Forensics): Attributes {
  const a: Attributes = {
    [Attr.processPid]: p.pid,
    [Attr.processUserId]: p.euid,
    [Attr.processRealUserId]: p.uid,
    [Attr.processCreationTime]: new Date(creationTimeMs(clock, p.startTicks)).toISOString(),
    [Attr.processComm]: p.comm,
    [Attr.execOrigin]: p.origin,
  };
  // PPID 0: started from outside the pod's PID namespace (a container's init, an exec session).
  if (p.ppid !== 0) a[Attr.processParentPid] = p.ppid;
  // Only from the executable (semantic conventions): unreadable, there is none; comm is the task's own name.
  if (p.exe !== undefined) a[Attr.processExecutableName] = executableName(p);
  if (p.session) a[Attr.processSessionLeaderPid] = p.session;
  if (p.pgrp) a[Attr.processGroupLeaderPid] = p.pgrp;
  if (p.tty !== undefined) a[Attr.processInteractive] = p.tty;
  if (p.exe !== undefined) a[Attr.processExecutablePath] = p.exe.path;
  if (p.exeFile !== undefined) {
    const f = p.exeFile;
    a[Attr.processExecutableDevice] = f.device;
    a[Attr.processExecutableInode] = f.inode;
    a[Attr.processExecutableChanged] = new Date(f.ctimeMs).toISOString();
    if (f.mtimeMs !== undefined) a[Attr.processExecutableModified] = new Date(f.mtimeMs).toISOString();
    if (f.size !== undefined) a[Attr.processExecutableSize] = f.size;
    if (f.nlink !== undefined) a[Attr.processExecutableLinks] = f.nlink;
  }
  if (p.script !== undefined) {
    a[Attr.processScriptPath] = p.script.path;
    if (p.script.file !== undefined) {
      a[Attr.processScriptDevice] = p.script.file.device;
      a[Attr.processScriptInode] = p.script.file.inode;
      a[Attr.processScriptChanged] = new Date(p.script.file.ctimeMs).toISOString();
    }
  }
  if (p.cwd !== undefined) a[Attr.processWorkingDirectory] = p.cwd;
  if (p.unread !== undefined) a[Attr.processUnread] = p.unread.map((u) => `${u.file}:${u.code}`);
  if (p.exe?.deleted) a[Attr.processExeDeleted] = true;
  if (p.exe?.memfd) a[Attr.processExeMemfd] = true;
  if (p.exe?.loader) a[Attr.processExeLoader] = true;
  if (p.args !== undefined && p.args.length > 0) {
    a[Attr.processArgsCount] = p.args.length;
    // argv[0] is the command's name, not an argument: recorded whatever the switch, redacted all the same.
    const { args, redacted } = redactorFor(forensics).redact(forensics.fullCommandArguments ? p.args : p.args.slice(0, 1));
    a[Attr.processCommand] = args[0]!;
    if (forensics.fullCommandArguments) {
      a[Attr.processCommandLine] = joinCommandLine(args);
      a[Attr.processCommandArgs] = args;
    }
    if (redacted) a[Attr.redacted] = true;
  }
  if (p.container.name !== undefined) a[Attr.k8sContainerName] = p.container.name;
  if (p.container.id !== undefined) a[Attr.containerId] = p.container.id;
  if (p.container.image !== undefined) Object.assign(a, imageAttributes(p.container.image));
  if (p.sessionPid !== undefined) a[Attr.execSessionPid] = p.sessionPid;
  return a;
}

/** `microenforcer.process.ancestors`, on exec and violation records: who started it. */
export function ancestryAttributes(p: ProcessInfo): Attributes {
  return p.ancestors === undefined || p.ancestors.length === 0 ? {} : { [Attr.processAncestors]: p.ancestors.map(({ pid, executable }) => ({ pid, executable })) };
}

/**
 * `preload`: in complete mode, whether the preload library reported this exec (an exec
 * record's own fact; absent outside complete mode).
 */
export function processRecord(event: ProcessEvent, clock: BootClock, forensics: Forensics, preload?: PreloadStatus): SensorRecord | undefined {
  if (!forensics.processActivity) return undefined;
  const p = event.process;
  const attributes = processAttributes(p, clock, forensics);
  const what = p.exe?.path ?? p.comm;
  const where = `in container ${containerLabel(p.container)}`;
  if (event.kind === "exit") {
    attributes[Attr.processExitTime] = new Date(event.observedAt).toISOString();
    // stat shows 0 to a reader that may not ptrace-read the process: trusted only where its executable was readable.
    if (event.exitStatus !== undefined && p.exe !== undefined) {
      const { code, signal } = exitCodeOf(event.exitStatus);
      attributes[Attr.processExitCode] = code;
      if (signal !== undefined) attributes[Attr.processExitSignal] = signal;
    }
    return {
      eventName: EventNames.processExit,
      severity: "INFO",
      body: `exit ${what} (pid ${p.pid}) ${where}`,
      attributes,
      timestamp: event.observedAt,
      observedTimestamp: event.observedAt,
    };
  }
  const reported = preload !== undefined && preload.status !== "absent";
  attributes[Attr.sensorDetection] = reported ? "preload" : p.detection;
  if (preload !== undefined) attributes[Attr.processPreload] = preload.status;
  if (preload?.status !== "absent" && preload?.verdict !== undefined) attributes[Attr.processPreloadVerdict] = preload.verdict;
  if (preload?.status === "absent") {
    attributes[Attr.processPreloadReason] = preload.reason;
    if (preload.evasion) attributes[Attr.processPreloadEvasion] = true;
  }
  if (event.inPlace) attributes[Attr.execInPlace] = true;
  Object.assign(attributes, ancestryAttributes(p));
  if (p.image === "fork-only") attributes[Attr.processForkOnly] = true;
  if (p.image === "exec-unseen") attributes[Attr.processExecUnseen] = true;
  const origin = p.origin === "child" ? "" : ` (${p.origin})`;
  const evasion = preload?.status === "absent" && preload.evasion;
  const verdict = preload?.status !== "absent" ? preload?.verdict : undefined;
  const why = evasion
    ? ` without the preload library (${preload.reason})`
    : verdict === "unvetted"
      ? " without waiting for a verdict, by an allow table entry the sidecar never made for it"
      : verdict === "unasked"
        ? " without waiting for a verdict in enforce mode: its preload library read another mode"
        : verdict === "late"
          ? " after its wait for a verdict was over, or about to be (the sidecar took its report too late): it may have gone on by the policy's failure choice"
          : "";
  return {
    eventName: EventNames.processExec,
    severity: why !== "" ? "WARN" : "INFO",
    body: `exec ${what} (pid ${p.pid}) ${where}${origin}${why}`,
    attributes,
    // A new process happened when it was created; an exec in place when we saw it.
    timestamp: event.inPlace ? event.observedAt : creationTimeMs(clock, p.startTicks),
    observedTimestamp: event.observedAt,
  };
}
