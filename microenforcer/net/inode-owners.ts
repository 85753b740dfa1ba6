/**
 * Socket inode → owning process, the way `ss -p` does it (each /proc/PID/fd/N that links to
 * `socket:[inode]`), but incremental: `ss` reads every descriptor of every process each
 * time, which costs tens of milliseconds for a process holding 10 000 sockets.
 *
 * Per process we cache fd → inode. A lookup for inodes nobody is known to own goes:
 * 1. processes never read (new ones): read every descriptor;
 * 2. processes whose descriptor count changed (stat of /proc/PID/fd gives it, Linux ≥ 6.2;
 *    0 elsewhere, which forces step 2 every time) or one of whose inet sockets closed: list
 *    the directory, read only descriptors that are new or whose socket is gone;
 * 3. if inodes are still unowned, re-read descriptors cached as not-inet (a file closed and
 *    its number reused by a socket leaves the count unchanged).
 * Only descriptors whose cached socket is still in the tables are trusted without a read.
 */
import type { AccessDenial } from "../proc/access.ts";
import { readAccessDenial } from "../proc/reader.ts";
import { readdirSync, readlinkSync, statSync } from "node:fs";
import { socketInode } from "../proc/socket-table.ts";

export interface Owner {
  pid: number;
  startTicks: number;
}

/** A /proc/PID/fd directory we could not read although the process exists. */
export interface FdProblem {
  pid: number;
  code: string;
  /** Why the kernel refused, when the sensor could tell. */
  denial?: AccessDenial;
}

interface ProcessFds {
  startTicks: number;
  /** Open descriptors when last listed (stat size of /proc/PID/fd). */
  count: number;
  /** fd → socket inode; 0 for anything that is not a TCP/UDP socket we know of. */
  fds: Map<string, number>;
  /** One of its inet sockets left the tables: its descriptor numbers may be reused. */
  dirty: boolean;
}

const gone = new Set(["ENOENT", "ESRCH"]);

export class InodeOwners {
  private readonly procRoot: string;
  private readonly byInode = new Map<number, Owner>();
  private readonly processes = new Map<number, ProcessFds>();
  private readonly problems: FdProblem[] = [];

  constructor(procRoot: string) {
    this.procRoot = procRoot;
  }

  owner(inode: number): Owner | undefined {
    return this.byInode.get(inode);
  }

  /** Sockets that left the tables: forget them, and mark their owners' descriptors as possibly reused. */
  forget(inodes: Iterable<number>): void {
    for (const inode of inodes) {
      const owner = this.byInode.get(inode);
      if (owner === undefined) continue;
      this.byInode.delete(inode);
      const p = this.processes.get(owner.pid);
      if (p !== undefined && p.startTicks === owner.startTicks) p.dirty = true;
    }
  }

  /**
   * Finds owners for `wanted` among `live` processes. `inTables` tells whether an inode is
   * still a TCP/UDP socket; only inodes in the tables are cached. Returns the inodes still unowned.
   */
  resolve(wanted: Set<number>, live: Iterable<Owner>, inTables: (inode: number) => boolean): Set<number> {
    const missing = new Set([...wanted].filter((inode) => !this.byInode.has(inode)));
    if (missing.size === 0) return missing;
    const liveList = [...live];
    this.prune(liveList);
    // New processes first: they are the likeliest owners of new sockets.
    const ordered = [...liveList.filter((p) => this.processes.get(p.pid)?.startTicks !== p.startTicks), ...liveList];
    for (const thorough of [false, true]) {
      for (const p of ordered) {
        if (missing.size === 0) return missing;
        this.refresh(p, thorough, inTables, missing);
      }
    }
    return missing;
  }

  /** Problems since the last call (EACCES on another user's fds and the like). */
  takeProblems(): FdProblem[] {
    return this.problems.splice(0);
  }

  private prune(live: Owner[]): void {
    const alive = new Map(live.map((p) => [p.pid, p.startTicks]));
    for (const [pid, p] of this.processes) {
      if (alive.get(pid) === p.startTicks) continue;
      this.processes.delete(pid);
      for (const inode of p.fds.values()) if (this.byInode.get(inode)?.pid === pid) this.byInode.delete(inode);
    }
  }

  private refresh(owner: Owner, thorough: boolean, inTables: (inode: number) => boolean, missing: Set<number>): void {
    const dir = `${this.procRoot}/${owner.pid}/fd`;
    let cached = this.processes.get(owner.pid);
    if (cached !== undefined && cached.startTicks !== owner.startTicks) cached = undefined;
    try {
      if (cached !== undefined && !thorough && !cached.dirty && statSync(dir).size === cached.count && cached.count > 0) return;
      const names = readdirSync(dir);
      const fds = new Map<string, number>();
      for (const name of names) {
        const before = cached?.fds.get(name);
        const trusted = before !== undefined && (before === 0 ? !thorough : inTables(before));
        const inode = trusted ? before : this.readFd(dir, name, inTables);
        if (inode === undefined) continue; // closed meanwhile
        fds.set(name, inode);
        // A socket shared across a fork keeps the owner it was first found with.
        if (inode !== 0 && !this.byInode.has(inode)) {
          this.byInode.set(inode, owner);
          missing.delete(inode);
        }
      }
      this.processes.set(owner.pid, { startTicks: owner.startTicks, count: names.length, fds, dirty: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EUNKNOWN";
      if (!gone.has(code)) {
        const denial = code === "EACCES" || code === "EPERM" ? readAccessDenial(owner.pid, this.procRoot) : undefined;
        this.problems.push(denial === undefined ? { pid: owner.pid, code } : { pid: owner.pid, code, denial });
      }
      this.processes.delete(owner.pid);
    }
  }

  /** Undefined when the descriptor was closed meanwhile; throws when the kernel refuses it (a root-owned fd directory lists, its links may not be read). */
  private readFd(dir: string, name: string, inTables: (inode: number) => boolean): number | undefined {
    try {
      const inode = socketInode(readlinkSync(`${dir}/${name}`));
      return inode !== undefined && inTables(inode) ? inode : 0;
    } catch (err) {
      if (gone.has((err as NodeJS.ErrnoException).code ?? "")) return undefined;
      throw err;
    }
  }
}
