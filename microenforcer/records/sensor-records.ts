/** Records in which the sensor speaks about itself: its blind spots and its health. */
import type { GapReport } from "../capture/events.ts";
import type { ForwarderOutcome } from "../net/dns-service.ts";
import type { ReadProblem } from "../proc/reader.ts";
import { EventNames, type Attributes, type SensorRecord, type Severity } from "./record.ts";

export function gapRecord(gap: GapReport): SensorRecord {
  const attributes: Attributes = { "microenforcer.gap.kind": gap.kind, "microenforcer.gap.count": gap.count };
  if (gap.kind === "pid") Object.assign(attributes, { "microenforcer.gap.first_pid": gap.firstPid, "microenforcer.gap.last_pid": gap.lastPid });
  attributes["microenforcer.gap.since"] = new Date(gap.since).toISOString();
  attributes["microenforcer.gap.until"] = new Date(gap.until).toISOString();
  const what =
    gap.kind === "pid"
      ? "PIDs (processes or threads) lived and exited between two looks"
      : "TCP connection ends (or connection attempts) were opened and gone between two looks at the socket tables";
  return { eventName: EventNames.sensorGap, severity: "WARN", body: `${gap.count} ${what} and were not observed`, attributes, timestamp: gap.until };
}

export function statusRecord(severity: Severity, body: string, attributes: Attributes = {}): SensorRecord {
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
  root: "drift cannot be detected",
};

/** A /proc file the sensor may not read, said once per cause with what it costs and the fix. */
export function readProblemRecord(problem: ReadProblem, pid: number): SensorRecord {
  const denied = problem.code === "EACCES" || problem.code === "EPERM";
  const fix = denied
    ? " Run the sidecar with the app's UID, or grant CAP_SYS_PTRACE where the platform allows it."
    : "";
  return statusRecord(
    "WARN",
    `cannot read /proc/PID/${problem.file} (${problem.code}) of processes of uid ${problem.uid}: ${consequence[problem.file]}.${fix}`,
    {
      "microenforcer.status.cause": readProblemCause(problem),
      "process.user.id": problem.uid,
      "process.pid": pid,
    },
  );
}

/** One report per file, error and uid: bounded, and says which users' processes are affected. */
export function readProblemCause(problem: ReadProblem): string {
  return `${problem.file}:${problem.code}:${problem.uid}`;
}

/** What became of the DNS forwarder the policy asked for. */
export function forwarderRecord(outcome: ForwarderOutcome): SensorRecord {
  switch (outcome.kind) {
    case "listening":
      return statusRecord("INFO", `DNS forwarder listening on ${outcome.listen} (UDP and TCP), upstream ${outcome.upstream.join(", ")}`, {
        "microenforcer.dns.listen": outcome.listen,
        "microenforcer.dns.upstream": outcome.upstream,
      });
    case "refused":
      return statusRecord("ERROR", `DNS forwarder not started: ${outcome.problem}`);
    case "listen-failed":
      return statusRecord("ERROR", `DNS forwarder could not listen on ${outcome.listen}: ${outcome.error}`, { "microenforcer.dns.listen": outcome.listen });
  }
}
