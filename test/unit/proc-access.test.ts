/** Why the kernel refused a /proc read: the comparison ptrace_may_access makes, over two statuses. */
import assert from "node:assert/strict";
import { accessDenial, capabilityNames } from "../../microenforcer/proc/access.ts";
import type { StatusFields } from "../../microenforcer/proc/parse.ts";

/** containerd's default set (CapPrm 00000000a80425fb), as a root app without securityContext holds it. */
const DEFAULT_CAPS = 0xa80425fbn;
const NET_RAW = 1n << 13n;

function status(uid: number, gid: number, permitted: bigint, effective = permitted, ids: Partial<{ euid: number; suid: number }> = {}): StatusFields {
  return {
    tgid: 1,
    pid: 1,
    ppid: 0,
    uid: { real: uid, effective: ids.euid ?? uid, saved: ids.suid ?? uid, fs: ids.euid ?? uid },
    gid: { real: gid, effective: gid, saved: gid, fs: gid },
    capabilities: { permitted, effective },
  };
}

describe("proc/access", () => {
  it("names capabilities by bit, and unknown bits by number", () => {
    assert.deepEqual(capabilityNames(DEFAULT_CAPS), [
      "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
    ]);
    assert.deepEqual(capabilityNames(1n << 45n), ["CAP_45"]);
  });

  it("a root sidecar without capabilities, beside a root app with the runtime's default: the capabilities it lacks", () => {
    const denial = accessDenial(status(0, 0, 0n), status(0, 0, DEFAULT_CAPS));
    assert.equal(denial?.cause, "capabilities");
    assert.equal(denial?.missing.length, 14);
    assert.deepEqual(accessDenial(status(0, 0, DEFAULT_CAPS & ~NET_RAW), status(0, 0, DEFAULT_CAPS))?.missing, ["NET_RAW"], "baseline-like: all but NET_RAW");
  });

  it("another user or group comes before capabilities, as in the kernel", () => {
    const uid = accessDenial(status(1000, 1000, 0n), status(0, 0, DEFAULT_CAPS));
    assert.deepEqual([uid?.cause, uid?.target, uid?.reader], ["uid", { uid: 0, gid: 0 }, { uid: 1000, gid: 1000 }]);
    assert.equal(accessDenial(status(1000, 0, 0n), status(1000, 1000, 0n))?.cause, "gid");
    assert.equal(accessDenial(status(1000, 1000, 0n), status(1000, 1000, 0n, 0n, { euid: 0 }))?.cause, "uid", "a setuid program: its effective UID differs");
  });

  it("same ids and capabilities: a task that changed its ids (not dumpable); CAP_SYS_PTRACE: a security module", () => {
    assert.equal(accessDenial(status(101, 101, 0n), status(101, 101, 0n), false)?.cause, "not-dumpable");
    assert.equal(accessDenial(status(0, 0, DEFAULT_CAPS), status(0, 0, DEFAULT_CAPS))?.cause, "not-dumpable", "nothing else is left");
    assert.equal(accessDenial(status(0, 0, DEFAULT_CAPS), status(0, 0, DEFAULT_CAPS | (1n << 21n)), false)?.cause, "not-dumpable", "the kernel checks dumpable before capabilities");
    assert.equal(accessDenial(status(0, 0, DEFAULT_CAPS), status(101, 101, 0n), false)?.cause, "not-dumpable", "a worker that dropped root: its UID would not help either");
    assert.equal(accessDenial(status(0, 0, 1n << 19n), status(1000, 1000, 0n))?.cause, "other");
  });

  it("cannot tell from a truncated status", () => {
    const { gid: _gid, ...noGid } = status(0, 0, 0n);
    assert.equal(accessDenial(noGid, status(0, 0, 0n)), undefined);
  });
});
