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
  /** 0 once the owner closed it (TIME_WAIT and the like). */
  inode: number;
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

function decodeEndpoint(text: string | undefined): { address: string; port: number } | undefined {
  if (text === undefined) return undefined;
  const [hex, portHex] = text.split(":");
  const address = hex === undefined ? undefined : decodeAddress(hex);
  const port = Number.parseInt(portHex ?? "", 16);
  return address === undefined || !Number.isInteger(port) ? undefined : { address, port };
}

/** Parses one table; malformed lines are counted, not fatal. */
export function parseSocketTable(text: string, transport: Transport): { entries: SocketEntry[]; malformed: number } {
  const entries: SocketEntry[] = [];
  let malformed = 0;
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "") continue;
    const f = line.split(/\s+/);
    const local = decodeEndpoint(f[1]);
    const remote = decodeEndpoint(f[2]);
    const uid = Number(f[7]);
    const inode = Number(f[9]);
    const stateCode = f[3]?.toUpperCase() ?? "";
    if (local === undefined || remote === undefined || !Number.isInteger(uid) || !Number.isInteger(inode) || !/^[0-9A-F]{2}$/.test(stateCode)) {
      malformed++;
      continue;
    }
    entries.push({
      transport,
      family: f[1]!.length > 13 ? "ipv6" : "ipv4",
      localAddress: local.address,
      localPort: local.port,
      remoteAddress: remote.address,
      remotePort: remote.port,
      state: tcpStates[stateCode] ?? stateCode,
      uid,
      inode,
    });
  }
  return { entries, malformed };
}

/** `socket:[12345]` → 12345. */
export function socketInode(link: string): number | undefined {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}
