/**
 * The network sensor's I/O edge, driven by the capture loop: polls the change detector
 * every pollMs while sockets come and go (idlePollMs after activeWindowMs of quiet, and at
 * once when the process trigger saw new PIDs), reads the socket tables when a socket may
 * have appeared, a row still waits for its owner or its accept, or the backstop is due,
 * finds the owners of new sockets, and hands the rows each read added and removed to the
 * ConnectionReporter.
 *
 * Cost control: a TCP table read walks the kernel's whole connection hash (~2 ms even in
 * an empty namespace) and costs ~15 ms more with 10 000 sockets, so, by the CPU time reads take,
 * - reads triggered by changes are spaced to use at most maxReadShare of a core;
 * - a TCP table of a family with no socket in use (sockstat) at this read and the last, and
 *   no TCP open since (snmp), has nothing new and is skipped, by the backstop too (reading
 *   the two empty TCP tables every 5 s was ~0.2 % of a core);
 * - the backstop reads every other table (changes the counters cannot show: a UDP socket
 *   closed and another opened within one poll, a connection closed or gone from a family
 *   that still has sockets);
 * - the backstop runs every backstopMs, or less often when reads are costly.
 *
 * Blind spot, accounted for: a TCP connection opened and gone (reset, or its TIME_WAIT
 * row replaced) between two reads leaves no row to see. The kernel's ActiveOpens +
 * PassiveOpens count every one, so opens since the first read that the reporter neither
 * reported nor still waits on are reported as a TCP gap.
 */
import { ChangeDetector, socketsAppeared, type SocketCounters } from "./change-detector.ts";
import { ConnectionReporter, defaultReporterOptions, type NetworkDetection, type NetworkObservation, type ReporterOptions } from "./connection-reporter.ts";
import { InodeOwners, type FdProblem, type Owner } from "./inode-owners.ts";
import { parseSocketTable, type SocketEntry, type Transport } from "../proc/socket-table.ts";
import { readProcText } from "../proc/reader.ts";

export interface SamplerOptions {
  procRoot: string;
  /** Detector poll interval while sockets appear. */
  pollMs: number;
  /** Detector poll interval after activeWindowMs without a new socket. */
  idlePollMs: number;
  activeWindowMs: number;
  backstopMs: number;
  /** Backstop reads may use at most this share of a core (they are spaced out when tables are large). */
  backstopShare: number;
  /** Reads triggered by changes may use at most this share of a core. */
  maxReadShare: number;
  reporter: ReporterOptions;
}

export const defaultSamplerOptions: SamplerOptions = {
  procRoot: "/proc",
  pollMs: 2,
  idlePollMs: 10,
  activeWindowMs: 2000,
  backstopMs: 5000,
  backstopShare: 0.0025,
  maxReadShare: 0.2,
  reporter: defaultReporterOptions,
};

export interface NetworkSample {
  observations: NetworkObservation[];
  problems: FdProblem[];
  /** Malformed table lines in this read (a parser or kernel-format problem worth reporting). */
  malformed: number;
}

const minNudgeMs = 1;
const tickSlackMs = 0.5;

/** Each table, and the sockstat count that says whether its family has sockets (UDP tables are cheap: always read). */
const tables: Array<[file: string, transport: Transport, inUse?: keyof SocketCounters]> = [
  ["tcp", "tcp", "tcp"],
  ["tcp6", "tcp", "tcp6"],
  ["udp", "udp"],
  ["udp6", "udp"],
];

export class NetworkSampler {
  private readonly options: SamplerOptions;
  private readonly detector: ChangeDetector;
  private readonly owners: InodeOwners;
  private readonly reporter: ConnectionReporter;
  private counters: SocketCounters | undefined;
  /** Counters at the last read: a family whose count moved since is read even when 0 now. */
  private countersAtRead: SocketCounters | undefined;
  /** A socket may have appeared since the last read. */
  private appeared = true;
  private rows = tables.map(() => new Map<number | string, SocketEntry>());
  private current = new Set<SocketEntry>();
  private lastPoll = -Infinity;
  private lastChange = -Infinity;
  private lastRead = -Infinity;
  private lastFullRead = -Infinity;
  private lastReadMs = 0;
  private lastFullReadMs = 0;
  private started = false;
  /** TCP opens counted before the first read ended: connections the startup read covered. */
  private opensAtStart: number | undefined;
  /** TCP connections reported since the startup read. */
  private tcpSeen = 0;
  /** TCP opens already reported as a gap. */
  private tcpGapReported = 0;

  constructor(options: SamplerOptions) {
    this.options = options;
    this.detector = new ChangeDetector(options.procRoot);
    this.owners = new InodeOwners(options.procRoot);
    this.reporter = new ConnectionReporter(options.reporter);
  }

  /**
   * When the next poll is due. Idle, the sampler rides on the capture loop's own ticks
   * (every 10 ms): a wake-up of its own would double the loop's idle wake-ups.
   */
  nextDueAt(): number {
    return this.interval() === this.options.pollMs ? this.lastPoll + this.options.pollMs : Infinity;
  }

  private interval(): number {
    return this.lastPoll - this.lastChange < this.options.activeWindowMs ? this.options.pollMs : this.options.idlePollMs;
  }

  /**
   * One look, if due; `nudge` (the process trigger moved) polls early; `final` (stopping)
   * reads everything now, whatever the counters and the read budget say, as does the first
   * call. `live` lists the processes that may own sockets.
   */
  poll(now: number, live: () => Iterable<Owner>, reason: "timer" | "nudge" | "final"): NetworkSample | undefined {
    if (reason === "final") return this.read(now, live, this.started ? "change" : "startup", true, this.detector.read(), true);
    // A nudge polls early, but not more than once per minNudgeMs: PIDs may move every tick.
    // A tick a little early (timers are not exact) counts as on time.
    if (now < this.lastPoll + this.interval() - tickSlackMs && !(reason === "nudge" && now - this.lastPoll >= minNudgeMs)) return undefined;
    this.lastPoll = now;
    const counters = this.detector.read();
    if (socketsAppeared(this.counters, counters)) {
      this.appeared = true;
      this.lastChange = now;
    }
    this.counters = counters;
    const full = now - this.lastFullRead >= Math.max(this.options.backstopMs, this.lastFullReadMs / this.options.backstopShare);
    if (!this.appeared && !full && !this.reporter.hasPending) return undefined;
    // Spacing: a read of T ms is followed by at least T (1 - share) / share ms without one.
    const spacing = (this.lastReadMs * (1 - this.options.maxReadShare)) / this.options.maxReadShare;
    if (this.started && now - this.lastRead < spacing) return undefined;
    const detection: NetworkDetection = !this.started ? "startup" : this.appeared || this.reporter.hasPending ? "change" : "backstop";
    this.started = true;
    this.appeared = false;
    return this.read(now, live, detection, full || detection === "startup", counters);
  }

  close(): void {
    this.detector.close();
  }

  /**
   * TCP connections opened since the last call that no read saw. Counted against the opens
   * of the last read's counters, so opens the sampler has not read the tables for yet are
   * not taken for missed ones.
   */
  takeTcpGap(): number {
    if (this.opensAtStart === undefined || this.countersAtRead === undefined) return 0;
    const unseen = this.countersAtRead.opens - this.opensAtStart - this.tcpSeen - this.reporter.pendingTcpConnections;
    const fresh = Math.max(0, unseen - this.tcpGapReported);
    this.tcpGapReported += fresh;
    return fresh;
  }

  /** `final`: the last read, which reads every table and leaves nothing waiting. */
  private read(now: number, live: () => Iterable<Owner>, detection: NetworkDetection, full: boolean, counters: SocketCounters, final = false): NetworkSample {
    // The thread's CPU time, not wall time: on a busy node a read preempted for 50 ms would
    // otherwise hold the next one back 200 ms, long enough to miss whole connections.
    const cpu0 = process.threadCpuUsage();
    let malformed = 0;
    const entries: SocketEntry[] = [];
    const before = this.countersAtRead;
    this.countersAtRead = counters;
    const opened = counters.opens !== before?.opens;
    tables.forEach(([file, transport, inUse], i) => {
      // A family without sockets at either read is skipped, unless a TCP open happened in between: its row may be in TIME_WAIT (not `inuse`).
      if (!opened && inUse !== undefined && counters[inUse] === 0 && before?.[inUse] === 0) {
        entries.push(...this.rows[i]!.values()); // unchanged as far as we know: keep its rows
        return;
      }
      let text: string;
      try {
        text = readProcText(`${this.options.procRoot}/net/${file}`);
      } catch {
        return; // no IPv6 in this kernel
      }
      const parsed = parseSocketTable(text, transport, this.rows[i]);
      this.rows[i] = parsed.rows;
      malformed += parsed.malformed;
      entries.push(...parsed.entries);
    });
    const previous = this.current;
    this.current = new Set(entries);
    const added = entries.filter((s) => !previous.has(s));
    const removed = [...previous].filter((s) => !this.current.has(s));
    const inodes = new Set<number>();
    for (const s of entries) if (s.inode !== 0) inodes.add(s.inode);
    this.owners.forget(removed.filter((s) => s.inode !== 0 && !inodes.has(s.inode)).map((s) => s.inode));
    const wanted = new Set([...added.filter((s) => s.inode !== 0).map((s) => s.inode), ...this.reporter.waitingInodes]);
    if (wanted.size > 0) this.owners.resolve(wanted, live(), (inode) => inodes.has(inode));
    const observations = this.reporter.update({ added, removed, owner: (inode) => this.owners.owner(inode), detection, now, final });
    for (const o of observations) if (o.kind === "connection" && o.socket.transport === "tcp" && o.detection !== "startup") this.tcpSeen++;
    // Read after the tables: every open counted in the base had its row there to be read.
    this.opensAtStart ??= this.detector.read().opens;
    this.lastRead = now;
    const cpu = process.threadCpuUsage(cpu0);
    this.lastReadMs = (cpu.user + cpu.system) / 1000;
    if (full) {
      this.lastFullRead = now;
      this.lastFullReadMs = this.lastReadMs;
    }
    return { observations, problems: this.owners.takeProblems(), malformed };
  }
}
