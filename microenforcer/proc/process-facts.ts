/**
 * I/O for the facts some controls need beyond what the capture loop reads: where a
 * process's stdio goes (reverse shells) and when its executable last changed (drift).
 * Both need ptrace-level access to the target, so failures come back as problems.
 */
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { parseSocketTable, socketInode, type SocketEntry, type Transport } from "./socket-table.ts";

/** What a process's stdin/stdout/stderr are connected to, as far as /proc tells. */
export interface StdioSockets {
  /** fd (0, 1, 2) → the inet socket's peer ("addr:port"), for fds that are TCP/UDP sockets. */
  inet: Map<number, string>;
}

const tables: Array<[file: string, transport: Transport]> = [
  ["tcp", "tcp"],
  ["tcp6", "tcp"],
  ["udp", "udp"],
  ["udp6", "udp"],
];

/** The process's TCP/UDP sockets by inode, from its own network namespace's tables. */
function inetSockets(pid: number, procRoot: string): Map<number, SocketEntry> {
  const byInode = new Map<number, SocketEntry>();
  for (const [file, transport] of tables) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/${pid}/net/${file}`, "latin1");
    } catch {
      continue; // no IPv6 in this kernel, or the process is gone
    }
    for (const entry of parseSocketTable(text, transport).entries) if (entry.inode !== 0) byInode.set(entry.inode, entry);
  }
  return byInode;
}

/**
 * fds 0–2 that are TCP/UDP sockets, with their peers. Undefined when the process is gone;
 * throws (EACCES) when its fds may not be read.
 */
export function readStdioSockets(pid: number, procRoot = "/proc"): StdioSockets | undefined {
  const inodes = new Map<number, number>();
  for (const fd of [0, 1, 2]) {
    try {
      const inode = socketInode(readlinkSync(`${procRoot}/${pid}/fd/${fd}`));
      if (inode !== undefined) inodes.set(fd, inode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") continue; // closed fd, or the process is gone
      throw err;
    }
  }
  const inet = new Map<number, string>();
  if (inodes.size === 0) return { inet };
  const sockets = inetSockets(pid, procRoot);
  for (const [fd, inode] of inodes) {
    const s = sockets.get(inode);
    if (s !== undefined) inet.set(fd, `${s.transport}/${s.remoteAddress}:${s.remotePort}`);
  }
  return { inet };
}

/** ctime (ms) of the executable as the process's own mount namespace sees it. */
export function readExeChangeTime(pid: number, exePath: string, procRoot = "/proc"): number {
  return statSync(`${procRoot}/${pid}/root${exePath}`).ctimeMs;
}
