/**
 * Why the kernel refused the sensor another process's /proc/PID/{exe,fd,environ,root}.
 * ptrace_may_access (PTRACE_MODE_READ_FSCREDS) wants the reader's fsuid equal to the target's
 * real, effective and saved UIDs, the same for GIDs, a dumpable target (one that never
 * changed its ids: a server's workers that dropped root are not), and
 * (cap_ptrace_access_check) the target's permitted capabilities within the reader's
 * effective ones. CAP_SYS_PTRACE passes all of it. The cause named is the one whose fix
 * would work: a non-dumpable target first (no UID or capability helps), then the kernel's
 * order. Pure: two /proc/PID/status compared.
 */
import type { StatusFields } from "./parse.ts";

/** Capability names by bit (include/uapi/linux/capability.h), without the CAP_ prefix. */
const CAPABILITY_NAMES: readonly string[] = [
  "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
  "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
  "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
  "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
  "CHECKPOINT_RESTORE",
];
const SYS_PTRACE = 19n;

/** A capability mask (CapPrm, CapEff) → names; bits the table does not know as `CAP_<bit>`. */
export function capabilityNames(mask: bigint): string[] {
  const names: string[] = [];
  for (let bit = 0n; mask >> bit !== 0n; bit++) if ((mask >> bit) & 1n) names.push(CAPABILITY_NAMES[Number(bit)] ?? `CAP_${bit}`);
  return names;
}

/**
 * `uid`/`gid`: not the same user or group (the sidecar runs as another UID or GID);
 * `capabilities`: the target holds capabilities the reader lacks; `not-dumpable`: ids and
 * capabilities match, so the target changed its ids after it started; `other`: the reader
 * has CAP_SYS_PTRACE, so an LSM (AppArmor, SELinux, Yama) refused.
 */
export type DenialCause = "uid" | "gid" | "capabilities" | "not-dumpable" | "other";

export interface AccessDenial {
  cause: DenialCause;
  /** The target's effective ids and the reader's file-system ids, which the kernel compared. */
  target: { uid: number; gid: number };
  reader: { uid: number; gid: number };
  /** What the target holds and the reader lacks (cause `capabilities`). */
  missing: string[];
}

/**
 * `dumpable`: false when the target's /proc files are owned by root although it runs as
 * another user (the kernel's mark of a non-dumpable task); undefined when that cannot tell
 * (a root target). Undefined when either status lacks a line the comparison needs.
 */
export function accessDenial(reader: StatusFields, target: StatusFields, dumpable?: boolean): AccessDenial | undefined {
  if (reader.gid === undefined || target.gid === undefined || reader.capabilities === undefined || target.capabilities === undefined) return undefined;
  const same = (ids: StatusFields["uid"], fs: number) => ids.real === fs && ids.effective === fs && ids.saved === fs;
  const missingMask = target.capabilities.permitted & ~reader.capabilities.effective;
  const cause: DenialCause =
    (reader.capabilities.effective >> SYS_PTRACE) & 1n
      ? "other"
      : dumpable === false
        ? "not-dumpable"
        : !same(target.uid, reader.uid.fs)
          ? "uid"
          : !same(target.gid, reader.gid.fs)
            ? "gid"
            : missingMask !== 0n
              ? "capabilities"
              : "not-dumpable";
  return {
    cause,
    target: { uid: target.uid.effective, gid: target.gid.effective },
    reader: { uid: reader.uid.fs, gid: reader.gid.fs },
    missing: cause === "capabilities" ? capabilityNames(missingMask) : [],
  };
}
