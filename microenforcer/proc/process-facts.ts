/**
 * I/O for the facts controls decide on beyond the exe link and argv, read by the capture
 * worker at the same look (first sight), so that a decision holds even when the process
 * and its file are gone a millisecond later: the executable's identity and times through
 * the process's own exe link, where its stdio goes, its working directory. All need
 * ptrace-level access to the target: failures are thrown (ENOENT once it is gone, EACCES).
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync, type Stats } from "node:fs";
import { parseSocketTable, socketInode, type SocketEntry, type Transport } from "./socket-table.ts";

/**
 * A program file's identity and times. The poller stats the process's exe link, which the
 * kernel follows to the inode itself, so this holds after the file is unlinked or replaced;
 * the preload library fstats /proc/self/exe from inside the process (capture/exec-report.ts).
 */
export interface ExeIdentity {
  /** `major:minor`, as `stat -c %Hd:%Ld` prints it. */
  device: string;
  inode: number;
  /** Status change time, ms since the epoch (nanoseconds kept as a fraction): only the kernel sets it. */
  ctimeMs: number;
  /** File type and permission bits (setuid included); not in records, so unknown in a replay. */
  mode?: number;
  /** What the poller's stat adds; the preload library's report carries the four above. */
  mtimeMs?: number;
  size?: number;
  /** Hard links: 0 once the file was deleted. */
  nlink?: number;
}

/** glibc's encoding of st_dev (makedev), which Node's Stats carry. */
function deviceOf(dev: number): string {
  const lo = dev % 2 ** 32;
  const hi = Math.floor(dev / 2 ** 32);
  const major = ((lo >>> 8) & 0xfff) | (hi & ~0xfff);
  const minor = (lo & 0xff) | (((lo >>> 12) | (hi << 20)) & ~0xff);
  return `${major >>> 0}:${minor >>> 0}`;
}

export function identityOf(s: Stats): ExeIdentity {
  return { device: deviceOf(s.dev), inode: s.ino, ctimeMs: s.ctimeMs, mode: s.mode, mtimeMs: s.mtimeMs, size: s.size, nlink: s.nlink };
}

/** The executable the process runs, through its own exe link: holds after the file was unlinked. */
export function readExeIdentity(pid: number, procRoot = "/proc"): ExeIdentity {
  return identityOf(statSync(`${procRoot}/${pid}/exe`));
}

/** A script an interpreter runs (proc/script-argv.ts names it), as a program in its own right. */
export interface ScriptFile {
  /** Absolute, as the process's mount namespace names it, its symlinks resolved when it could be read. */
  path: string;
  /** Its identity and times, when it could be read. */
  file?: ExeIdentity;
}

/** Symlinks followed in one path before giving up, as the kernel's own limit. */
const maxLinks = 40;

/**
 * `path` with its symlinks resolved inside `root` (a /proc/PID/root): the kernel would
 * resolve an absolute link target against the reader's own root, so each is followed here.
 * From a component that does not exist on, the rest is taken as it is (`exists` false).
 */
function resolveInRoot(root: string, path: string): { path: string; exists: boolean } {
  const todo = path.split("/").filter((c) => c !== "" && c !== ".");
  const done: string[] = [];
  for (let links = 0; todo.length > 0; ) {
    const part = todo.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const here = `/${[...done, part].join("/")}`;
    let link: boolean;
    try {
      link = lstatSync(`${root}${here}`).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      return { path: `/${[...done, part, ...todo].join("/")}`, exists: false };
    }
    if (!link) {
      done.push(part);
      continue;
    }
    if (++links > maxLinks) throw Object.assign(new Error(`too many symlinks in ${path}`), { code: "ELOOP" });
    const target = readlinkSync(`${root}${here}`);
    if (target.startsWith("/")) done.length = 0;
    todo.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
  }
  return { path: `/${done.join("/")}`, exists: true };
}

/**
 * The script at `path` (absolute, as the process names it): through the fd the interpreter
 * holds it open on when it does (that holds after the file is unlinked or replaced), else
 * by its path inside the process's root. Throws when neither can be read.
 */
export function readScript(pid: number, path: string, procRoot = "/proc"): ScriptFile {
  const dir = `${procRoot}/${pid}`;
  // `bash <(curl …)` runs /dev/fd/63: the process's own fd, which "self" would make the reader's.
  const ownFd = /^\/(?:dev\/fd|proc\/self\/fd)\/(\d+)$/.exec(path)?.[1] ?? (path === "/dev/stdin" ? "0" : undefined);
  if (ownFd !== undefined) return { path, file: identityOf(statSync(`${dir}/fd/${ownFd}`)) };
  const resolved = resolveInRoot(`${dir}/root`, path);
  const named = new Set([resolved.path, `${resolved.path} (deleted)`]);
  for (const fd of readdirSync(`${dir}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`${dir}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    if (named.has(target)) return { path: resolved.path, file: identityOf(statSync(`${dir}/fd/${fd}`)) };
  }
  if (!resolved.exists) throw Object.assign(new Error(`no script ${resolved.path} in the root of ${pid}`), { code: "ENOENT" });
  return { path: resolved.path, file: identityOf(statSync(`${dir}/root${resolved.path}`)) };
}

/** Target of /proc/PID/cwd: the working directory as the process's mount namespace names it. */
export function readCwd(pid: number, procRoot = "/proc"): string {
  return readlinkSync(`${procRoot}/${pid}/cwd`);
}

/** What a process's stdin, stdout and stderr are connected to, as far as /proc tells. */
export interface Stdio {
  /** Link targets of fds 0, 1, 2 (`socket:[123]`, `pipe:[45]`, `/dev/pts/0`); undefined for a closed fd. */
  targets: Array<string | undefined>;
  /** fd → the inet socket's peer (`tcp/addr:port`), for the fds that are TCP/UDP sockets. */
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
 * fds 0–2 and, for those that are TCP/UDP sockets, their peers (the socket tables are read
 * only when one is a socket). Throws EACCES when its fds may not be read.
 */
export function readStdio(pid: number, procRoot = "/proc"): Stdio {
  const targets: Array<string | undefined> = [];
  const inodes = new Map<number, number>();
  for (const fd of [0, 1, 2]) {
    try {
      const target = readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
      targets.push(target);
      const inode = socketInode(target);
      if (inode !== undefined) inodes.set(fd, inode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      targets.push(undefined); // a closed fd, or the process is gone: no socket either way
    }
  }
  const inet = new Map<number, string>();
  if (inodes.size === 0) return { targets, inet };
  const sockets = inetSockets(pid, procRoot);
  for (const [fd, inode] of inodes) {
    const s = sockets.get(inode);
    if (s !== undefined) inet.set(fd, `${s.transport}/${s.remoteAddress}:${s.remotePort}`);
  }
  return { targets, inet };
}
