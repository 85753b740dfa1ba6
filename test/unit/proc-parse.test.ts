import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  containerIdFromCgroup,
  decodeBytes,
  environValue,
  joinCommandLine,
  parseBootTime,
  isKernelThread,
  parseExeLink,
  exitCodeOf,
  parseStat,
  parseStatus,
  parseUptime,
  pidsFromDirEntries,
  splitCmdline,
} from "../../microenforcer/proc/parse.ts";

const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url));

describe("/proc parsers", () => {
  describe("parseStat", () => {
    it("reads a real stat line", () => {
      const stat = parseStat(fixture("stat-cat.txt").toString());
      assert.ok(stat);
      assert.equal(stat.comm, "cat");
      assert.equal(stat.state, "R");
      assert.ok(stat.startTicks > 0);
    });

    it("reads the process group, session, controlling terminal and a zombie's wait status", () => {
      const cat = parseStat(fixture("stat-cat.txt").toString());
      assert.deepEqual([cat?.pgrp, cat?.session, cat?.ttyNr, cat?.exitStatus], [10514, 1426, 0, 0]);
      const zombie = parseStat("77 (sh) Z 1 77 77 34816 77 4194572 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 256\n");
      assert.deepEqual([zombie?.state, zombie?.ttyNr, zombie?.exitStatus], ["Z", 34816, 256]);
      assert.deepEqual(exitCodeOf(256), { code: 1 });
      assert.deepEqual(exitCodeOf(9), { code: 137, signal: 9 });
      // A kernel before 3.5 prints no field 52.
      assert.equal(parseStat("42 (x) S 7 42 42 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 999 0 0\n")?.exitStatus, undefined);
    });

    it("splits at the last parenthesis when comm holds ') ('", () => {
      const stat = parseStat(fixture("stat-hostile-comm.txt").toString());
      assert.deepEqual(
        { pid: stat?.pid, comm: stat?.comm, state: stat?.state, ppid: stat?.ppid, startTicks: stat?.startTicks },
        { pid: 10537, comm: "a) (b", state: "S", ppid: 10536, startTicks: 65242 },
      );
    });

    it("keeps spaces and a trailing ')' inside comm", () => {
      const stat = parseStat("42 (x) y) S 7 42 42 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 999 0 0\n");
      assert.equal(stat?.comm, "x) y");
      assert.equal(stat?.ppid, 7);
      assert.equal(stat?.utimeTicks, 3);
      assert.equal(stat?.stimeTicks, 4);
      assert.equal(stat?.startTicks, 999);
    });

    it("tells kernel threads (PF_KTHREAD in field 9) from processes", () => {
      const kthreadd = parseStat(fixture("stat-kthreadd.txt").toString());
      assert.equal(kthreadd?.ppid, 0);
      assert.ok(kthreadd && isKernelThread(kthreadd), "kthreadd, PPID 0 like a container's init, is a kernel thread");
      const cat = parseStat(fixture("stat-cat.txt").toString());
      assert.ok(cat && !isKernelThread(cat));
    });

    it("rejects truncated or garbage lines instead of inventing numbers", () => {
      assert.equal(parseStat(""), undefined);
      assert.equal(parseStat("12 (sh) S 1"), undefined);
      assert.equal(parseStat("no parens at all"), undefined);
    });
  });

  it("parseStatus reads Tgid, PPid, every uid and gid, and the permitted and effective capabilities", () => {
    const status = parseStatus(fixture("status-cat.txt").toString());
    assert.ok(status);
    assert.deepEqual([status.uid, status.gid], [{ real: 0, effective: 0, saved: 0, fs: 0 }, { real: 0, effective: 0, saved: 0, fs: 0 }]);
    assert.deepEqual(status.capabilities, { permitted: 0x1fffeffffffn, effective: 0x1fffeffffffn });
    assert.equal(status.tgid, status.pid);
    const thread = parseStatus("Name:\tnode\nTgid:\t100\nPid:\t104\nPPid:\t1\nUid:\t1000\t1001\t1000\t1000\n");
    assert.deepEqual(thread, { tgid: 100, pid: 104, ppid: 1, uid: { real: 1000, effective: 1001, saved: 1000, fs: 1000 } }, "a truncated status has no gid or capabilities");
  });

  describe("splitCmdline", () => {
    it("returns argv with spaces, quotes, newlines, invalid UTF-8 and a 100 kB argument intact", () => {
      const args = splitCmdline(fixture("cmdline-hostile.bin"));
      assert.deepEqual(args.slice(0, 8), [
        "/bin/sh",
        "-c",
        "sleep 5",
        "argv0",
        "arg with spaces",
        `quote"s'q`,
        "new\nline",
        "\\xff\\xfeinvalid",
      ]);
      assert.equal(args[8], "x".repeat(100_000));
      assert.equal(args.length, 9);
    });

    it("treats one trailing NUL as a terminator, not an empty argument", () => {
      assert.deepEqual(splitCmdline(Buffer.from("ls\0-l\0")), ["ls", "-l"]);
      assert.deepEqual(splitCmdline(Buffer.from("ls\0\0")), ["ls", ""]);
      assert.deepEqual(splitCmdline(Buffer.from("nginx: worker process")), ["nginx: worker process"]);
      assert.deepEqual(splitCmdline(Buffer.alloc(0)), []);
    });
  });

  it("decodeBytes keeps valid UTF-8 (including U+FFFD itself) and escapes invalid bytes", () => {
    assert.equal(decodeBytes(Buffer.from("héllo ✓")), "héllo ✓");
    assert.equal(decodeBytes(Buffer.from("\uFFFD")), "\uFFFD");
    assert.equal(decodeBytes(Buffer.from([0x61, 0xc3, 0x28, 0x62])), "a\\xc3(b");
    assert.equal(decodeBytes(Buffer.from([0xed, 0xa0, 0x80])), "\\xed\\xa0\\x80", "surrogates are not UTF-8");
    assert.equal(decodeBytes(Buffer.from([0xf0, 0x9f, 0x98])), "\\xf0\\x9f\\x98", "truncated sequence");
  });

  it("joinCommandLine quotes only what a shell would split", () => {
    assert.equal(joinCommandLine(["curl", "-s", "https://example.test/a?b=c"]), "curl -s 'https://example.test/a?b=c'");
    assert.equal(joinCommandLine(["sh", "-c", "echo 'hi'"]), `sh -c 'echo '\\''hi'\\'''`);
    assert.equal(joinCommandLine(["/usr/bin/env", "A=1", "--flag=x,y"]), "/usr/bin/env A=1 --flag=x,y");
  });

  it("parseExeLink recognises deleted and memfd executables", () => {
    assert.deepEqual(parseExeLink("/usr/bin/curl"), { path: "/usr/bin/curl", deleted: false, memfd: false });
    assert.deepEqual(parseExeLink("/tmp/x (deleted)"), { path: "/tmp/x", deleted: true, memfd: false });
    assert.deepEqual(parseExeLink("/memfd:payload (deleted)"), { path: "/memfd:payload", deleted: true, memfd: true });
  });

  it("environValue finds one variable among NUL-separated entries", () => {
    const env = Buffer.from("PATH=/bin\0MICROENFORCER_CONTAINERX=no\0MICROENFORCER_CONTAINER=app\0HOME=/\0");
    assert.equal(environValue(env, "MICROENFORCER_CONTAINER"), "app");
    assert.equal(environValue(env, "MISSING"), undefined);
    assert.equal(environValue(Buffer.from("A=1"), "A"), "1", "no trailing NUL");
  });

  describe("containerIdFromCgroup", () => {
    const id = "a".repeat(56) + "0123abcd";
    it("takes the id from the unified line of containerd, CRI-O and podman paths", () => {
      assert.equal(containerIdFromCgroup(`0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-${id}.scope\n`), id);
      assert.equal(containerIdFromCgroup(`0::/kubepods/besteffort/pod1/crio-${id}\n`), id);
      assert.equal(containerIdFromCgroup(`0::/machine.slice/libpod-${id}.scope/container\n`), "container");
      assert.equal(containerIdFromCgroup(`0::/../cri-containerd-${id}.scope\n`), id, "relative path seen from a private cgroup namespace");
    });

    it("falls back to the most specific v1 line and ignores the root cgroup", () => {
      assert.equal(containerIdFromCgroup(fixture("cgroup-v1-hybrid.txt").toString()), "f2339f54d54717ddb2af82e893473a80");
      assert.equal(containerIdFromCgroup(`12:pids:/docker/${id}\n1:name=systemd:/docker/${id}\n0::/\n`), id);
      assert.equal(containerIdFromCgroup("0::/\n"), undefined);
    });
  });

  it("parses btime, uptime and numeric /proc entries", () => {
    assert.equal(parseBootTime("cpu  1 2 3\nbtime 1764000000\nprocesses 9\n"), 1764000000);
    assert.equal(parseUptime("12345.67 2345.00\n"), 12345.67);
    assert.deepEqual(pidsFromDirEntries(["1", "self", "42", "sys", "9999"]), [1, 42, 9999]);
  });
});
