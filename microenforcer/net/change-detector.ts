/**
 * A cheap "did the socket tables change?" check, read every few milliseconds so the
 * tables themselves (milliseconds each with thousands of sockets) are read only when
 * something happened. All counters are per network namespace:
 * - /proc/net/snmp `Tcp: ActiveOpens PassiveOpens` only ever grow: every TCP connection,
 *   IPv4 or IPv6, moves one of them, however many others closed meanwhile;
 * - /proc/net/sockstat `sockets: used` and `TCP|UDP: inuse`, /proc/net/sockstat6
 *   `TCP6|UDP6: inuse`: new listeners and UDP sockets (a close and an open within one
 *   poll cancel out; the sampler's backstop read catches those), and which families are
 *   in use at all.
 * The files stay open and are re-read at offset 0 (OpenProcFile).
 */
import { OpenProcFile } from "../proc/reader.ts";

/** Socket counts of the namespace, and its two TCP open counters (which only grow). */
export interface SocketCounters {
  used: number;
  tcp: number;
  udp: number;
  tcp6: number;
  udp6: number;
  opens: number;
}

/** The integer after the first `label` in text, or 0. */
function numberAfter(text: string, label: string): number {
  const at = text.indexOf(label);
  if (at < 0) return 0;
  let n = 0;
  for (let i = at + label.length; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    n = n * 10 + c;
  }
  return n;
}

/**
 * Counts from sockstat and sockstat6 (not mem, alloc or tw: those move without new
 * sockets), ActiveOpens + PassiveOpens from snmp's `Tcp:` header and value lines.
 * Parsed with indexOf: this runs a hundred times a second.
 */
export function socketCounters(sockstat: string, sockstat6: string, snmp: string): SocketCounters {
  return {
    used: numberAfter(sockstat, "sockets: used "),
    tcp: numberAfter(sockstat, "\nTCP: inuse "),
    udp: numberAfter(sockstat, "\nUDP: inuse "),
    tcp6: numberAfter(sockstat6, "TCP6: inuse "),
    udp6: numberAfter(sockstat6, "UDP6: inuse "),
    opens: tcpOpens(snmp),
  };
}

/** Column numbers of ActiveOpens and PassiveOpens, by `Tcp:` header line (one per kernel). */
const opensColumns = new Map<string, [number, number]>();

function tcpOpens(snmp: string): number {
  const header = snmp.indexOf("\nTcp: ");
  const values = snmp.indexOf("\nTcp: ", header + 1);
  if (header < 0 || values < 0) return 0;
  const headerLine = snmp.slice(header + 1, values);
  let columns = opensColumns.get(headerLine);
  if (columns === undefined) {
    const names = headerLine.trim().split(" ");
    columns = [names.indexOf("ActiveOpens"), names.indexOf("PassiveOpens")];
    opensColumns.set(headerLine, columns);
  }
  // Walk the value line's fields up to the later of the two columns.
  const last = Math.max(...columns);
  let sum = 0;
  let column = 0;
  let n = 0;
  for (let i = values + 1; i <= snmp.length; i++) {
    const c = i === snmp.length ? 10 : snmp.charCodeAt(i);
    if (c === 32 || c === 10) {
      if (column === columns[0] || column === columns[1]) sum += n;
      if (c === 10 || column >= last) break;
      column++;
      n = 0;
    } else if (c >= 48 && c <= 57) {
      n = n * 10 + c - 48;
    }
  }
  return sum;
}

/**
 * Whether a socket may have appeared between two polls: a TCP open, or a count that went
 * up. Counts that only went down (closes) wait for the next read.
 */
export function socketsAppeared(before: SocketCounters | undefined, now: SocketCounters): boolean {
  if (before === undefined) return true;
  return (Object.keys(now) as Array<keyof SocketCounters>).some((k) => now[k] > before[k]);
}

const maxFileBytes = 8192;

export class ChangeDetector {
  /** sockstat, sockstat6 (undefined in a kernel without IPv6), snmp. */
  private readonly files: Array<OpenProcFile | undefined> = [];

  /** Throws when a file cannot be opened (no /proc/net: no network sensor). */
  constructor(procRoot: string) {
    try {
      this.files.push(new OpenProcFile(`${procRoot}/net/sockstat`, maxFileBytes));
      this.files.push(openOptional(`${procRoot}/net/sockstat6`));
      this.files.push(new OpenProcFile(`${procRoot}/net/snmp`, maxFileBytes));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  read(): SocketCounters {
    const [sockstat, sockstat6, snmp] = this.files.map((file) => file?.read() ?? "");
    return socketCounters(sockstat!, sockstat6!, snmp!);
  }

  close(): void {
    for (const file of this.files.splice(0)) file?.close();
  }
}

function openOptional(path: string): OpenProcFile | undefined {
  try {
    return new OpenProcFile(path, maxFileBytes);
  } catch {
    return undefined;
  }
}
