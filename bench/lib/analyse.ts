/**
 * Pure analysis for bench/process-capture.ts: ground truth (the probes' own log) against
 * what a watcher printed, plus its CPU and memory from raw /proc samples. No I/O here.
 */

/** One workload process, as it logged itself right after exec. */
export interface Probe {
  pid: number;
  /** CLOCK_REALTIME at the top of main, ms since the epoch. */
  execMs: number;
  args: string[];
  id: string;
  /** Lifetime class, from the id `bench-<class>-<n>`. */
  cls: string;
}

export interface ExecRecord {
  pid: number;
  args?: string[];
  comm?: string;
  exeName?: string;
  observedMs: number;
}

export interface GapRecord {
  count: number;
  firstPid: number;
  lastPid: number;
}

export interface Records {
  /** microenforcer.process.exec records by pid, in output order. */
  execs: Map<number, ExecRecord[]>;
  /** PIDs named by any process record (exec or exit): the sensor claims to have seen them. */
  reported: Set<number>;
  gaps: GapRecord[];
  /** Lines that were not a JSON object: counted, never fatal (a finding about the watcher). */
  unparseable: number;
}

export interface ClassResult {
  cls: string;
  n: number;
  /** Captured with exactly the probe's argv. */
  withCommandLine: number;
  /** Any exec record for the pid whose args name the probe, or whose comm or executable is the probe's. */
  atAll: number;
  /** Not captured with the right command line. */
  missed: number;
  /** Missed and never named by any process record: only these can be in a gap count. */
  neverReported: number;
  /** Never reported and inside some gap record's pid range. */
  accounted: number;
  latencyMs: number[];
}

export function parseProbeLog(text: string): Probe[] {
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [pid, ns, ...args] = l.split("\t");
      const id = args[2];
      const cls = /^bench-(.+)-\d+$/.exec(id ?? "")?.[1];
      if (pid === undefined || ns === undefined || id === undefined || cls === undefined) {
        throw new Error(`bad probe log line: ${JSON.stringify(l)}`);
      }
      return { pid: Number(pid), execMs: Number(BigInt(ns) / 1000n) / 1000, args, id, cls };
    });
}

export function parseRecords(text: string): Records {
  const records: Records = { execs: new Map(), reported: new Set(), gaps: [], unparseable: 0 };
  for (const l of text.split("\n")) {
    if (l === "") continue;
    let r: { eventName?: string; observedTimestamp?: string; attributes?: Record<string, unknown> };
    try {
      r = JSON.parse(l);
    } catch {
      records.unparseable++;
      continue;
    }
    const a = r.attributes ?? {};
    if (r.eventName === "microenforcer.sensor.gap") {
      if (a["microenforcer.gap.kind"] === "tcp") continue; // connections, not PIDs
      records.gaps.push({
        count: Number(a["microenforcer.gap.count"]),
        firstPid: Number(a["microenforcer.gap.first_pid"]),
        lastPid: Number(a["microenforcer.gap.last_pid"]),
      });
      continue;
    }
    if (r.eventName !== "microenforcer.process.exec" && r.eventName !== "microenforcer.process.exit") continue;
    const pid = Number(a["process.pid"]);
    records.reported.add(pid);
    if (r.eventName !== "microenforcer.process.exec") continue;
    const rec: ExecRecord = { pid, observedMs: Date.parse(r.observedTimestamp ?? "") };
    if (Array.isArray(a["process.command_args"])) rec.args = a["process.command_args"] as string[];
    if (typeof a["microenforcer.process.comm"] === "string") rec.comm = a["microenforcer.process.comm"];
    if (typeof a["process.executable.name"] === "string") rec.exeName = a["process.executable.name"];
    const list = records.execs.get(pid) ?? [];
    list.push(rec);
    records.execs.set(pid, list);
  }
  return records;
}

const sameArgs = (a: string[] | undefined, b: string[]): boolean =>
  a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

/** Per lifetime class, in the order the classes ran. */
export function captureByClass(probes: Probe[], records: Records): ClassResult[] {
  const byClass = new Map<string, ClassResult>();
  for (const p of probes) {
    let c = byClass.get(p.cls);
    if (c === undefined) {
      c = { cls: p.cls, n: 0, withCommandLine: 0, atAll: 0, missed: 0, neverReported: 0, accounted: 0, latencyMs: [] };
      byClass.set(p.cls, c);
    }
    c.n++;
    const execs = records.execs.get(p.pid) ?? [];
    const right = execs.find((r) => sameArgs(r.args, p.args));
    // The probe runs as argv[0] "probe" from a file named probe: comm and executable name alike.
    const named = (r: ExecRecord): boolean => r.args?.includes(p.id) === true || r.comm === p.args[0] || r.exeName === p.args[0];
    if (right !== undefined || execs.some(named)) c.atAll++;
    if (right !== undefined) {
      c.withCommandLine++;
      // Records carry whole milliseconds: compare at that resolution, never a negative latency.
      c.latencyMs.push(right.observedMs - Math.floor(p.execMs));
      continue;
    }
    c.missed++;
    if (records.reported.has(p.pid)) continue;
    c.neverReported++;
    if (records.gaps.some((g) => g.firstPid <= p.pid && p.pid <= g.lastPid)) c.accounted++;
  }
  return [...byClass.values()];
}

/** Nearest-rank percentile; undefined for no samples. */
export function percentile(values: number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export interface StatSample {
  wallMs: number;
  /** utime + stime of the watcher (all its threads), in clock ticks. */
  ticks: number;
  /** Machine-wide busy time (all CPUs, everything but idle and iowait), in clock ticks. */
  machineBusyTicks: number;
}

/** A file written by ns-run.sh's sample: /proc/uptime, /proc/PID/stat, /proc/stat's cpu line. */
export function parseStatSample(text: string): StatSample {
  const [uptime, stat, cpu] = text.split("\n");
  // comm may hold spaces and parentheses: fields are counted from the last ")".
  const fields = (stat ?? "").slice((stat ?? "").lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
  // cpu user nice system idle iowait irq softirq steal ...
  const [user, nice, system, , , irq, softirq, steal] = (cpu ?? "").split(/\s+/).slice(1).map(Number);
  const machineBusyTicks = [user, nice, system, irq, softirq, steal].reduce((a: number, b) => a + (b ?? NaN), 0);
  const wallMs = Number(uptime) * 1000;
  if (![wallMs, ticks, machineBusyTicks].every(Number.isFinite)) throw new Error(`bad stat sample: ${text}`);
  return { wallMs, ticks, machineBusyTicks };
}

/** USER_HZ: the unit of /proc/PID/stat and /proc/stat times on every Linux ABI in use. */
const ticksPerSecond = 100;

const percentOfCore = (ticks: number, wallMs: number): number => (ticks / ticksPerSecond / (wallMs / 1000)) * 100;

/** CPU the watcher used between two samples, as % of one core. */
export function cpuPercent(start: StatSample, end: StatSample): number {
  return percentOfCore(end.ticks - start.ticks, end.wallMs - start.wallMs);
}

/** CPU the whole machine used between two samples (watcher included), as % of one core. */
export function machineCpuPercent(start: StatSample, end: StatSample): number {
  return percentOfCore(end.machineBusyTicks - start.machineBusyTicks, end.wallMs - start.wallMs);
}

/** A memory field of /proc/PID/status (VmHWM: peak resident set; VmRSS: now), in MB. */
export function statusMb(status: string, field: "VmHWM" | "VmRSS"): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status)?.[1];
  if (kb === undefined) throw new Error(`no ${field} in /proc/PID/status`);
  return Number(kb) / 1024;
}
