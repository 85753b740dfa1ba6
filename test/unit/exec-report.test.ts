import assert from "node:assert/strict";
import fc from "fast-check";
import {
  encodeReport,
  encodeVerdict,
  frameLength,
  maxReportBytes,
  parentClaim,
  parseReport,
  reportDisagrees,
  reportHeaderBytes,
  reportSnapshot,
  type ExecReport,
} from "../../microenforcer/capture/exec-report.ts";
import { execFingerprint } from "../../microenforcer/proc/reader.ts";

const sample: ExecReport = {
  wait: true,
  standing: false,
  loader: false,
  pid: 4242,
  ppid: 0,
  startTicks: 1_234_567,
  comm: "ls",
  uid: { real: 1000, effective: 0, saved: 0 },
  gid: { real: 1000, effective: 1000, saved: 1000 },
  exe: { device: "254:1", inode: 247_493, ctimeMs: 1_700_000_000_123.456, mode: 0o104755 },
  exeKey: { major: 254, minor: 1, inode: 247_493n, ctimeNs: 1_700_000_000_123_456_000n },
  exeLink: "/usr/bin/ls",
  rawArgs: Buffer.from("ls\0-la\0/\0"),
  cwd: "/srv/app",
  container: "app",
  truncated: { exe: false, cmdline: false },
};

describe("exec report wire format", () => {
  it("reads back every field the library writes", () => {
    const parsed = parseReport(encodeReport(sample));
    assert.ok(parsed.ok);
    const { exe, ...rest } = parsed.report;
    const { exe: sampleExe, ...sampleRest } = sample;
    assert.deepEqual(rest, sampleRest);
    assert.equal(exe?.device, sampleExe!.device);
    assert.equal(exe?.inode, sampleExe!.inode);
    assert.equal(exe?.mode, sampleExe!.mode);
    assert.ok(Math.abs(exe!.ctimeMs - sampleExe!.ctimeMs) < 1e-3, "ctime keeps sub-millisecond precision");
  });

  it("keeps the executable's identity exact for the allow table: all 64 bits of an inode, the ctime's nanoseconds", () => {
    const exeKey = { major: 0, minor: 52, inode: 2n ** 63n + 5n, ctimeNs: 1_700_000_000_987_654_321n };
    const parsed = parseReport(encodeReport({ ...sample, exeKey }));
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.report.exeKey, exeKey);
  });

  it("marks what the library could not read as absent, not empty", () => {
    const bare: ExecReport = { ...sample, wait: false, container: undefined, cwd: undefined, exe: undefined, exeKey: undefined };
    delete bare.container;
    delete bare.cwd;
    delete bare.exe;
    delete bare.exeKey;
    const parsed = parseReport(encodeReport(bare));
    assert.ok(parsed.ok);
    assert.equal(parsed.report.wait, false);
    assert.equal("cwd" in parsed.report, false);
    assert.equal("container" in parsed.report, false);
    assert.equal("exe" in parsed.report, false);
    assert.equal("exeKey" in parsed.report, false);
  });

  it("refuses frames that lie about their size or shape", () => {
    const good = encodeReport(sample);
    const cases: Array<[string, Buffer, RegExp]> = [
      ["short", good.subarray(0, 40), /shorter than/],
      ["magic", Buffer.concat([Buffer.from("XXXX"), good.subarray(4)]), /bad magic/],
      ["version", (() => { const b = Buffer.from(good); b.writeUInt16LE(2, 4); return b; })(), /version 2/],
      ["total", (() => { const b = Buffer.from(good); b.writeUInt32LE(good.length + 1, 8); return b; })(), /does not match/],
      ["lengths", (() => { const b = Buffer.from(good); b.writeUInt16LE(200, 88); return b; })(), /do not add up/],
      ["pid", (() => { const b = Buffer.from(good); b.writeInt32LE(-5, 12); return b; })(), /impossible identity/],
    ];
    for (const [name, frame, problem] of cases) {
      const parsed = parseReport(frame);
      assert.equal(parsed.ok, false, name);
      if (!parsed.ok) assert.match(parsed.problem, problem, name);
    }
  });

  it("never throws on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: reportHeaderBytes + 64 }), fc.boolean(), (bytes, magic) => {
        const buf = Buffer.from(bytes);
        if (magic && buf.length >= 4) buf.write("MEXR", 0, "latin1");
        if (magic && buf.length >= 6) buf.writeUInt16LE(1, 4);
        if (magic && buf.length >= 12) buf.writeUInt32LE(buf.length, 8);
        parseReport(buf);
      }),
    );
  });

  it("announces the frame length once 12 bytes are in", () => {
    const frame = encodeReport(sample);
    assert.equal(frameLength(frame.subarray(0, 11)), undefined);
    assert.equal(frameLength(frame.subarray(0, 12)), frame.length);
    assert.ok(frame.length < maxReportBytes);
  });

  it("gives the poller's fingerprint for the same exec, so both sensors' views merge", () => {
    const snapshot = reportSnapshot(sample);
    assert.equal(snapshot.fingerprint, "/usr/bin/ls\0ls\0-la\0/\0");
    assert.deepEqual(snapshot.args, ["ls", "-la", "/"]);
    assert.deepEqual(snapshot.exe, { path: "/usr/bin/ls", deleted: false, memfd: false });
    assert.equal(snapshot.container, "app");
    assert.equal(snapshot.euid, 0);
    assert.equal(snapshot.uid, 1000);
  });

  it("takes a loader the library saw from inside for one, whatever its name: the file its argv names is what runs", () => {
    const copy: ExecReport = { ...sample, loader: true, comm: "sh", exeLink: "/tmp/sh", rawArgs: Buffer.from("sh\0--library-path\0/opt\0./evil\0-c\0x\0") };
    const parsed = parseReport(encodeReport(copy));
    assert.ok(parsed.ok && parsed.report.loader);
    const snapshot = reportSnapshot(parsed.report);
    assert.deepEqual(snapshot.exe, { path: "/tmp/sh", deleted: false, memfd: false, loader: true });
    assert.equal(snapshot.script?.path, "/srv/app/evil", "the loader's option skipped, not a shell's `-c`");
    const plain = reportSnapshot({ ...copy, loader: false });
    assert.equal(plain.exe?.loader, undefined);
    assert.notEqual(plain.script?.path, "/srv/app/evil", "without the flag, a shell by its name");
  });

  it("holds a report against what its live process shows: its program, argv, executable and working directory", () => {
    const seen = { fingerprint: execFingerprint("/usr/bin/ls", "ls\0-la\0/\0"), exe: { ...sample.exe! }, cwd: "/srv/app" };
    assert.equal(reportDisagrees(sample, seen), undefined);
    const unreadable = { fingerprint: execFingerprint("", "ls\0-la\0/\0") };
    assert.equal(reportDisagrees(sample, unreadable), undefined, "what the sidecar may not read is not held against it");
    assert.equal(reportDisagrees(sample, { ...seen, fingerprint: execFingerprint("/usr/bin/sleep", "ls\0-la\0/\0") }), "runs /usr/bin/sleep, not /usr/bin/ls");
    assert.match(reportDisagrees(sample, { ...seen, fingerprint: execFingerprint("/usr/bin/ls", "ls\0-l\0") })!, /other arguments/);
    assert.match(reportDisagrees(sample, { ...seen, exe: { ...seen.exe, ctimeMs: seen.exe.ctimeMs + 1 } })!, /identity or ctime/);
    assert.match(reportDisagrees(sample, { ...seen, exe: { ...seen.exe, inode: 1 } })!, /identity or ctime/);
    assert.equal(reportDisagrees(sample, { ...seen, cwd: "/" }), "works in /, not /srv/app");
    const cut = { ...sample, rawArgs: Buffer.from("ls\0-la"), truncated: { exe: false, cmdline: true } };
    assert.equal(reportDisagrees(cut, seen), undefined, "a cut argv is held against as much of it as it names");
  });

  it("holds a report's user and group ids against the process's: a claim of another UID is a disagreement", () => {
    const seen = { fingerprint: execFingerprint("/usr/bin/ls", "ls\0-la\0/\0"), ids: { uid: { ...sample.uid, fs: 0 }, gid: { ...sample.gid, fs: 1000 } } };
    assert.equal(reportDisagrees(sample, seen), undefined);
    assert.match(reportDisagrees(sample, { ...seen, ids: { ...seen.ids, uid: { real: 1000, effective: 1000, saved: 1000, fs: 1000 } } })!, /runs as uid 1000, not the user and group ids/);
    assert.match(reportDisagrees(sample, { ...seen, ids: { ...seen.ids, gid: { real: 0, effective: 0, saved: 0, fs: 0 } } })!, /group ids/);
    assert.equal(reportDisagrees(sample, { ...seen, ids: { uid: seen.ids.uid } }), undefined, "a status without Gid holds no GIDs against it");
  });

  it("takes a report's parent only where it can be true: the parent now, or for an orphan one that died since", () => {
    const child = { ...sample, ppid: 300, startTicks: 5000 };
    const parent = (state: string, startTicks: number) => ({ pid: 300, comm: "sh", state, ppid: 1, startTicks, flags: 0, utimeTicks: 0, stimeTicks: 0, pgrp: 300, session: 300, ttyNr: 0 });
    assert.equal(parentClaim(child, 300, undefined), "holds", "the parent /proc shows");
    assert.equal(parentClaim(child, 1, undefined), "holds", "gone: its orphan went to the namespace's init");
    assert.equal(parentClaim(child, 1, parent("Z", 4000)), "holds", "a zombie: it died");
    assert.equal(parentClaim(child, 1, parent("S", 6000)), "holds", "its PID taken by a younger process");
    assert.equal(parentClaim(child, 42, parent("S", 4000)), "false", "alive, and not the parent: the sensor named as parent, say");
    assert.equal(parentClaim(child, 42, undefined), "unsure", "dead, but its parent lives: /proc's parent, not called false (a subreaper's orphan)");
    assert.equal(parentClaim(child, 42, parent("Z", 4000)), "unsure");
    assert.equal(parentClaim({ ...child, ppid: 0 }, 1, undefined), "holds", "a parent outside the namespace leaves orphans to its init");
    assert.equal(parentClaim({ ...child, ppid: 0 }, 42, undefined), "false", "but not to a process of the pod");
  });

  it("encodes verdicts the library reads: allow, and deny with a reason cut to 255 bytes", () => {
    assert.deepEqual([...encodeVerdict({ allow: true })], [0x41, 0]);
    const deny = encodeVerdict({ allow: false, reason: "executables: /usr/bin/nc is a blocked executable" });
    assert.equal(deny[0], 0x44);
    assert.equal(deny[1], deny.length - 2);
    assert.equal(deny.subarray(2).toString(), "executables: /usr/bin/nc is a blocked executable");
    const long = encodeVerdict({ allow: false, reason: `${"é".repeat(200)}\nx` });
    assert.ok(long.length <= 257);
    assert.equal(long[1], long.length - 2);
    assert.ok(!long.subarray(2).toString().includes("\uFFFD"), "no broken character at the cut");
  });
});
