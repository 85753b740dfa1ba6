/**
 * What /proc says about a process the preload library did not report: how its program is
 * loaded, whether the loader ran it in secure-execution mode, and whether the environment it
 * started with still named the library and the socket. Read as soon as the process is seen,
 * since a short-lived one is gone by the time its report would be overdue.
 */
import { closeSync, fstatSync, openSync, readSync, statSync, type BigIntStats } from "node:fs";
import { elfLinking, type ElfLinking } from "./elf.ts";
import { environValue } from "./parse.ts";
import { readExecFingerprint, readProcBytes, readStat } from "./reader.ts";

export interface PreloadFacts {
  /** Undefined when the executable could not be read (gone, or not permitted). */
  linking?: ElfLinking;
  /** The executable has the setuid or setgid bit: the loader then ignores LD_PRELOAD. */
  setid?: boolean;
  /** The two variables as the process's environment had them at exec; undefined when unreadable. */
  environ?: { ldPreload?: string; socket?: string };
}

const headBytes = 4096;

/**
 * How each executable is loaded, by its identity (device, inode, ctime to the nanosecond:
 * only the kernel sets ctime, and any write, chmod or replacement moves it; and size), so a
 * program run again is not read again: one stat of the exe link instead of an open, read and close.
 */
const linkings = new Map<string, ElfLinking>();
const maxLinkings = 1024;

const identityKey = (s: BigIntStats): string => `${s.dev}:${s.ino}:${s.ctimeNs}:${s.size}`;

function optional<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined; // gone, or EACCES: the record then says the reason is unknown
  }
}

/** The ELF headers of the file behind `exe`, remembered under the identity of the file read (not of a path that may have moved on since). */
function readLinking(exe: string): { linking: ElfLinking; stats: BigIntStats } {
  const fd = openSync(exe, "r");
  try {
    const stats = fstatSync(fd, { bigint: true });
    const readAt = (offset: number, length: number): Buffer => {
      const bytes = Buffer.alloc(length);
      return bytes.subarray(0, readSync(fd, bytes, 0, length, offset));
    };
    const linking = elfLinking(readAt(0, headBytes), readAt);
    if (linking.kind !== "unknown") {
      if (linkings.size >= maxLinkings) linkings.delete(linkings.keys().next().value!);
      linkings.set(identityKey(stats), linking);
    }
    return { linking, stats };
  } finally {
    closeSync(fd);
  }
}

/**
 * `fingerprint`: the exec image the facts are wanted for. A process that has exec'd since
 * shows another image's executable and environment: then nothing is returned.
 */
export function readPreloadFacts(pid: number, fingerprint: string, socketEnv: string, procRoot = "/proc"): PreloadFacts {
  const exe = `${procRoot}/${pid}/exe`;
  const facts: PreloadFacts = {};
  const known = optional(() => statSync(exe, { bigint: true }));
  const cached = known === undefined ? undefined : linkings.get(identityKey(known));
  const read = cached === undefined ? optional(() => readLinking(exe)) : undefined;
  const linking = cached ?? read?.linking;
  if (linking !== undefined) facts.linking = linking;
  // The mode of the file whose headers were read, where they were read now.
  const mode = (read?.stats ?? known)?.mode;
  if (mode !== undefined) facts.setid = (Number(mode) & 0o6000) !== 0;
  const environ = optional(() => readProcBytes(`${procRoot}/${pid}/environ`));
  // A zombie's environ reads empty too: only a live process's empty environment is one.
  const live = (): boolean => !["Z", "X", undefined].includes(readStat(pid, procRoot)?.state);
  if (environ !== undefined && (environ.length > 0 || live())) {
    const ldPreload = environValue(environ, "LD_PRELOAD");
    const socket = environValue(environ, socketEnv);
    facts.environ = { ...(ldPreload !== undefined && { ldPreload }), ...(socket !== undefined && { socket }) };
  }
  return readExecFingerprint(pid, procRoot) === fingerprint ? facts : {};
}
