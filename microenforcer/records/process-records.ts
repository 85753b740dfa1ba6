/**
 * Process facts → SensorRecords, as the policy's forensics switches allow. Attribute
 * names follow the OTel process and container semantic conventions.
 */
import type { RuntimePolicySpec } from "../../policies/schema.ts";
import { creationTimeMs, type BootClock } from "../proc/boot-clock.ts";
import { joinCommandLine } from "../proc/parse.ts";
import type { ProcessEvent, ProcessInfo } from "../tracker/process-tracker.ts";
import { EventNames, type Attributes, type SensorRecord } from "./record.ts";
import { createRedactor, type Redactor } from "./redact.ts";

export type Forensics = RuntimePolicySpec["forensics"];

function executableName(p: ProcessInfo): string {
  return p.exe !== undefined && !p.exe.memfd ? (p.exe.path.split("/").pop() ?? p.comm) : p.comm;
}

function containerLabel(p: ProcessInfo): string {
  return p.container.name ?? (p.container.id !== undefined ? p.container.id.slice(0, 12) : "?");
}

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
    "process.pid": p.pid,
    "process.parent_pid": p.ppid,
    "process.executable.name": executableName(p),
    "process.user.id": p.euid,
    "process.real_user.id": p.uid,
    "process.creation.time": new Date(creationTimeMs(clock, p.startTicks)).toISOString(),
    "microenforcer.process.comm": p.comm,
    "microenforcer.exec.origin": p.origin,
  };
  if (p.exe !== undefined) a["process.executable.path"] = p.exe.path;
  if (p.exe?.deleted) a["microenforcer.process.exe_deleted"] = true;
  if (p.exe?.memfd) a["microenforcer.process.exe_memfd"] = true;
  if (forensics.fullCommandArguments && p.args !== undefined && p.args.length > 0) {
    const { args, redacted } = redactorFor(forensics).redact(p.args);
    a["process.command_line"] = joinCommandLine(args);
    a["process.command_args"] = args;
    if (redacted) a["microenforcer.redacted"] = true;
  }
  if (p.container.name !== undefined) a["k8s.container.name"] = p.container.name;
  if (p.container.id !== undefined) a["container.id"] = p.container.id;
  if (p.sessionPid !== undefined) a["microenforcer.exec.session_pid"] = p.sessionPid;
  return a;
}

export function processRecord(event: ProcessEvent, clock: BootClock, forensics: Forensics): SensorRecord | undefined {
  if (!forensics.processActivity) return undefined;
  const p = event.process;
  const attributes = processAttributes(p, clock, forensics);
  const what = p.exe?.path ?? p.comm;
  const where = `in container ${containerLabel(p)}`;
  if (event.kind === "exit") {
    attributes["process.exit.time"] = new Date(event.observedAt).toISOString();
    return {
      eventName: EventNames.processExit,
      severity: "INFO",
      body: `exit ${what} (pid ${p.pid}) ${where}`,
      attributes,
      timestamp: event.observedAt,
      observedTimestamp: event.observedAt,
    };
  }
  attributes["microenforcer.sensor.detection"] = p.detection;
  if (event.inPlace) attributes["microenforcer.exec.in_place"] = true;
  if (p.image === "fork-only") attributes["microenforcer.process.fork_only"] = true;
  if (p.image === "exec-unseen") attributes["microenforcer.process.exec_unseen"] = true;
  const origin = p.origin === "child" ? "" : ` (${p.origin})`;
  return {
    eventName: EventNames.processExec,
    severity: "INFO",
    body: `exec ${what} (pid ${p.pid}) ${where}${origin}`,
    attributes,
    // A new process happened when it was created; an exec in place when we saw it.
    timestamp: event.inPlace ? event.observedAt : creationTimeMs(clock, p.startTicks),
    observedTimestamp: event.observedAt,
  };
}
