/**
 * How the kubelet's exec probes are recorded (spec.forensics.probes): `record` each run,
 * `off`, or `summarize` (the default): a probe's exec record once per probe command per
 * window, carrying how many runs it stands for, and no exit records. A probe runs every few
 * seconds for the pod's whole life; its records would otherwise be most of a pod's. Applies
 * to the probe's own records only: what a probe starts is recorded as any child is, and
 * violations are never held back.
 */
import type { ProbeRecordingMode } from "../../policies/schema.ts";
import { Attr } from "../records/attributes.ts";
import { EventNames, type SensorRecord } from "../records/record.ts";

/** One record per probe command per this long, in `summarize`. */
export const PROBE_SUMMARY_WINDOW_MS = 10 * 60 * 1000;

export class ProbeRecording {
  /** Probe command → when its last record went out, and runs not recorded since. */
  private readonly commands = new Map<string, { recordedAt: number; runs: number }>();

  /** The records as the mode allows; `now` in ms. */
  filter(records: SensorRecord[], mode: ProbeRecordingMode, now: number): SensorRecord[] {
    if (mode === "record" || !records.some(isProbeRecord)) return records;
    return records.filter((r) => !isProbeRecord(r) || (mode === "summarize" && r.eventName === EventNames.processExec && this.due(r, now)));
  }

  /** Whether this run's record goes out (then with the runs it stands for); else counted. */
  private due(record: SensorRecord, now: number): boolean {
    const a = record.attributes;
    // The container and the command (redacted as recorded; its executable without command lines) name a probe.
    const key = JSON.stringify([a[Attr.k8sContainerName], a[Attr.processCommandArgs] ?? a[Attr.processExecutablePath] ?? a[Attr.processComm]]);
    const last = this.commands.get(key);
    if (last !== undefined && now - last.recordedAt < PROBE_SUMMARY_WINDOW_MS) {
      last.runs++;
      return false;
    }
    a[Attr.probeRuns] = (last?.runs ?? 0) + 1;
    this.commands.set(key, { recordedAt: now, runs: 0 });
    return true;
  }
}

function isProbeRecord(record: SensorRecord): boolean {
  return record.attributes[Attr.execOrigin] === "probe" && (record.eventName === EventNames.processExec || record.eventName === EventNames.processExit);
}
