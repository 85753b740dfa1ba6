/**
 * `/proc/net/{tcp,tcp6,udp,udp6}` parsing: the pod's sockets as the kernel lists them.
 * Addresses are hex in host byte order (IPv6 as four 32-bit words); an IPv4-mapped IPv6
 * address is shown as IPv4, as people know it.
 */
import { endianness } from "node:os";

export type Transport = "tcp" | "udp";

export interface SocketEntry {
  transport: Transport;
  family: "ipv4" | "ipv6";
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
  /** TCP state name (ESTABLISHED, LISTEN, …); UDP uses the same codes (07 = unconnected). */
  state: string;
  uid: number;
  /** 0 once the owner closed it (TIME_WAIT and the like), or before accept(). */
  inode: number;
  /** Endpoints and state as the kernel printed them (`0100007F:1F90 00000000:0000 0A`). */
  row: string;
}

const tcpStates: Record<string, string> = {
  "01": "ESTABLISHED",
  "02": "SYN_SENT",
  "03": "SYN_RECV",
  "04": "FIN_WAIT1",
  "05": "FIN_WAIT2",
  "06": "TIME_WAIT",
  "07": "CLOSE",
  "08": "CLOSE_WAIT",
  "09": "LAST_ACK",
  "0A": "LISTEN",
  "0B": "CLOSING",
  "0C": "NEW_SYN_RECV",
};

const littleEndian = endianness() === "LE";

/** One 32-bit word as printed by the kernel (%08X of the in-memory value) → its 4 bytes. */
function wordBytes(hex: string): number[] {
  const value = Number.parseInt(hex, 16);
  const bytes = [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
  return littleEndian ? bytes.reverse() : bytes;
}

export function decodeAddress(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  if (hex.length === 8) return wordBytes(hex).join(".");
  if (hex.length !== 32) return undefined;
  const bytes = [0, 8, 16, 24].flatMap((i) => wordBytes(hex.slice(i, i + 8)));
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return bytes.slice(12).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIPv6(groups);
}

/** RFC 5952: the longest run (≥ 2) of zero groups becomes `::`. */
function compressIPv6(groups: string[]): string {
  let best = { start: -1, length: 0 };
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > best.length && j - i >= 2) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(":");
  return `${groups.slice(0, best.start).join(":")}::${groups.slice(best.start + best.length).join(":")}`;
}

function decodeEndpoint(text: string): { address: string; port: number } | undefined {
  const colon = text.indexOf(":");
  const address = decodeAddress(text.slice(0, colon));
  const portHex = text.slice(colon + 1);
  const port = /^[0-9A-Fa-f]{4}$/.test(portHex) ? Number.parseInt(portHex, 16) : Number.NaN;
  return colon < 0 || address === undefined || Number.isNaN(port) ? undefined : { address, port };
}

export interface TableParse {
  entries: SocketEntry[];
  /** Lines that do not look like a socket row: counted, never fatal. */
  malformed: number;
  /** Inode (or, for inode 0, the printed row) → entry: pass it back as `previous`. */
  rows: Map<number | string, SocketEntry>;
}

/** Field boundaries of one line: sl, local, remote, st, queues, timer, retrnsmt, uid, timeout, inode. */
const starts = new Int32Array(10);
const ends = new Int32Array(10);

/** Splits text[from, to) at runs of spaces into up to 10 fields; returns how many it found. */
function splitFields(text: string, from: number, to: number): number {
  let n = 0;
  let i = from;
  while (n < 10) {
    while (i < to && text.charCodeAt(i) === 32) i++;
    if (i >= to) break;
    starts[n] = i;
    while (i < to && text.charCodeAt(i) !== 32) i++;
    ends[n++] = i;
  }
  return n;
}

/** Skips `count` space-separated fields from i; returns the start of the next one. */
function skipFields(text: string, i: number, to: number, count: number): number {
  for (let k = 0; k < count; k++) {
    while (i < to && text.charCodeAt(i) === 32) i++;
    while (i < to && text.charCodeAt(i) !== 32) i++;
  }
  while (i < to && text.charCodeAt(i) === 32) i++;
  return i;
}

/**
 * Parses one table. A row the kernel printed identically in the previous read (same
 * inode, endpoints and state) reuses that read's entry: a pod's thousands of idle sockets
 * cost a few string compares each, not a decode. The kernel prints `sl:` then fixed-width
 * hex endpoints and state (30 characters for IPv4, 78 for IPv6); the rest is split on spaces.
 */
export function parseSocketTable(text: string, transport: Transport, previous?: ReadonlyMap<number | string, SocketEntry>): TableParse {
  const entries: SocketEntry[] = [];
  const rows = new Map<number | string, SocketEntry>();
  let malformed = 0;
  // The first line is the column header.
  for (let pos = text.indexOf("\n") + 1; pos > 0 && pos < text.length; ) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    const line = pos;
    pos = end + 1;
    const colon = text.indexOf(":", line);
    if (colon < 0 || colon >= end) {
      if (text.slice(line, end).trim() !== "") malformed++;
      continue;
    }
    const at = colon + 2;
    const width = text.charCodeAt(at + 13) === 32 ? 30 : text.charCodeAt(at + 37) === 32 ? 78 : 0;
    // Queues, timer, retransmits, uid, timeout, then the inode.
    const inodeAt = width === 0 ? end : skipFields(text, at + width, end, 5);
    let inode = 0;
    let digits = 0;
    for (let i = inodeAt; i < end; i++, digits++) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      inode = inode * 10 + c;
    }
    const key = inode > 0 ? inode : text.slice(at, at + width);
    const cached = digits > 0 ? previous?.get(key) : undefined;
    const entry = cached !== undefined && text.startsWith(cached.row, at) ? cached : decodeRow(text, line, end, transport);
    if (entry === undefined) {
      malformed++;
      continue;
    }
    entries.push(entry);
    rows.set(entry.inode > 0 ? entry.inode : entry.row, entry);
  }
  return { entries, malformed, rows };
}

function decodeRow(text: string, from: number, to: number, transport: Transport): SocketEntry | undefined {
  if (splitFields(text, from, to) < 10) return undefined;
  const field = (i: number): string => text.slice(starts[i]!, ends[i]!);
  const localText = field(1);
  const remoteText = field(2);
  const local = decodeEndpoint(localText);
  const remote = decodeEndpoint(remoteText);
  const stateCode = field(3).toUpperCase();
  const uid = Number(field(7));
  const inode = Number(field(9));
  if (local === undefined || remote === undefined || !/^[0-9A-F]{2}$/.test(stateCode) || !Number.isInteger(uid) || !Number.isInteger(inode)) {
    return undefined;
  }
  return {
    transport,
    family: localText.length > 13 ? "ipv6" : "ipv4",
    localAddress: local.address,
    localPort: local.port,
    remoteAddress: remote.address,
    remotePort: remote.port,
    state: tcpStates[stateCode] ?? stateCode,
    uid,
    inode,
    row: text.slice(starts[1]!, ends[3]!),
  };
}

/** `socket:[12345]` → 12345. */
export function socketInode(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}
