import assert from "node:assert/strict";
import {
  checkContainerExec,
  checkDrift,
  checkExecutables,
  checkFilelessExec,
  checkReverseShell,
  standingAllow,
  type Controls,
} from "../../microenforcer/policy/process-controls.ts";
import { matchesExecutable } from "../../policies/executable-pattern.ts";
import { checkListen, checkOutbound, PortScanDetector, type ConnectionFacts } from "../../microenforcer/policy/network-controls.ts";
import { processInfo } from "./process-fixture.ts";

const proc = processInfo;

const exe = (path: string, flags: Partial<{ deleted: boolean; memfd: boolean; loader: true }> = {}) => ({ path, deleted: false, memfd: false, ...flags });

describe("process controls", () => {
  it("matches executables by path glob, and by name for patterns without a slash", () => {
    assert.ok(matchesExecutable("**/xmrig", "/tmp/.x/xmrig", "xmrig"));
    assert.ok(matchesExecutable("/usr/bin/nc", "/usr/bin/nc", "nc"));
    assert.ok(matchesExecutable("nc", "/usr/bin/nc", "nc"));
    assert.ok(!matchesExecutable("/usr/bin/nc", "/usr/bin/ncat", "ncat"), "a near miss");
    assert.ok(!matchesExecutable("/bin/*", "/bin/sub/sh", "sh"), "* stays within one directory");
    assert.ok(matchesExecutable("**/.hidden/*", "/tmp/.hidden/miner", "miner"), "dot directories match");
  });

  describe("containerExec", () => {
    const controls: Controls = { containerExec: { block: true, allowedCommands: ["/bin/ps", "/usr/bin/ps"] } };
    it("flags an exec session running anything but an allowed command", () => {
      const [f] = checkContainerExec(controls, proc({ origin: "exec-session", comm: "sh", exe: exe("/bin/dash"), args: ["sh"] }));
      assert.equal(f?.control, "containerExec");
      assert.equal(f?.block, true);
      assert.match(f!.reason, /exec session into container app runs \/bin\/dash/);
    });
    it("allows the listed command and ignores the container's own processes", () => {
      assert.deepEqual(checkContainerExec(controls, proc({ origin: "exec-session", comm: "ps", exe: exe("/usr/bin/ps"), args: ["ps", "aux"] })), []);
      assert.deepEqual(checkContainerExec(controls, proc({ origin: "child", comm: "sh", exe: exe("/bin/dash") })), []);
      assert.deepEqual(checkContainerExec(controls, proc({ origin: "container-init" })), []);
    });
    it("with no allowed commands, every session is a finding; block: false only records", () => {
      const [f] = checkContainerExec({ containerExec: { block: false } }, proc({ origin: "exec-session" }));
      assert.equal(f?.rule, "no exec sessions allowed");
      assert.equal(f?.block, false);
    });
  });

  describe("executables", () => {
    it("blocks what the block list names", () => {
      const controls: Controls = { executables: { blocked: ["/usr/bin/nc", "**/xmrig"], unidentified: "alert" } };
      assert.equal(checkExecutables(controls, proc({ exe: exe("/var/tmp/xmrig"), comm: "xmrig" }))[0]?.rule, "**/xmrig");
      assert.equal(checkExecutables(controls, proc({ exe: exe("/usr/bin/nc"), comm: "nc" }))[0]?.rule, "/usr/bin/nc");
      assert.deepEqual(checkExecutables(controls, proc({ exe: exe("/usr/bin/ncat"), comm: "ncat" })), []);
    });
    it("in allow-list mode, flags anything not listed", () => {
      const controls: Controls = { executables: { allowed: ["/app/server", "/bin/*"], unidentified: "alert" } };
      assert.deepEqual(checkExecutables(controls, proc({ exe: exe("/app/server"), comm: "server" })), []);
      assert.deepEqual(checkExecutables(controls, proc({ exe: exe("/bin/sh"), comm: "sh" })), []);
      assert.equal(checkExecutables(controls, proc())[0]?.rule, "allowed");
    });
    it("checks the script an interpreter runs as an executable, against the block and the allow list", () => {
      const sh = (script: string) => proc({ comm: "sh", exe: exe("/usr/bin/dash"), script: { path: script } });
      const [f] = checkExecutables({ executables: { blocked: ["/dev/shm/**"], unidentified: "alert" } }, sh("/dev/shm/x.sh"));
      assert.deepEqual(f, { control: "executables", rule: "/dev/shm/**", reason: "/dev/shm/x.sh (a script run by /usr/bin/dash) is a blocked executable", block: true });
      assert.equal(checkExecutables({ executables: { blocked: ["x.sh"], unidentified: "alert" } }, sh("/dev/shm/x.sh")).length, 1, "by name too");
      assert.deepEqual(checkExecutables({ executables: { blocked: ["/dev/shm/**"], unidentified: "alert" } }, sh("/app/run.sh")), []);
      const allowed: Controls = { executables: { allowed: ["/usr/bin/dash", "/app/*.sh"], unidentified: "alert" } };
      assert.deepEqual(checkExecutables(allowed, sh("/app/run.sh")), []);
      assert.equal(checkExecutables(allowed, sh("/dev/shm/x.sh"))[0]?.reason, "/dev/shm/x.sh (a script run by /usr/bin/dash) is not in the allowed executables");
    });
    it("falls back to the task name for the block list when the executable path is unreadable", () => {
      assert.equal(checkExecutables({ executables: { blocked: ["xmrig"], unidentified: "alert" } }, proc({ exe: undefined, comm: "xmrig" })).length, 1);
    });
    it("never lets an unreadable executable pass an allow list by its name: an unidentified executable, alerted or blocked as the policy says", () => {
      const posing = proc({ exe: undefined, comm: "server", pid: 77 });
      const [alerted] = checkExecutables({ executables: { allowed: ["server", "/app/server"], unidentified: "alert" } }, posing);
      assert.deepEqual(alerted, {
        control: "executables",
        rule: "unidentified executable",
        reason: "unidentified executable: server (pid 77) runs a program the sensor may not read, so it cannot be checked against the allowed executables",
        block: false,
      });
      assert.equal(checkExecutables({ executables: { allowed: ["/app/server"], unidentified: "block" } }, posing)[0]?.block, true);
      assert.deepEqual(checkExecutables({ executables: { blocked: ["/usr/bin/nc"], unidentified: "block" } }, posing), [], "no allow list, nothing to check against");
    });
  });

  describe("reverseShell", () => {
    const controls: Controls = { reverseShell: { block: true } };
    const sockets = (entries: Array<[number, string]>) => ({ targets: [0, 1, 2].map((fd) => (entries.some(([n]) => n === fd) ? `socket:[${900 + fd}]` : "pipe:[7]")), inet: new Map(entries) });
    it("flags a shell whose stdio is a TCP socket", () => {
      const [f] = checkReverseShell(controls, proc({ comm: "bash", exe: exe("/usr/bin/bash") }), sockets([[0, "tcp/10.1.2.3:4444"], [1, "tcp/10.1.2.3:4444"]]));
      assert.match(f!.reason, /bash has its stdin, stdout connected to tcp\/10.1.2.3:4444/);
    });
    it("counts interpreters and busybox shells, not ordinary programs, and not pipes or unix sockets", () => {
      assert.equal(checkReverseShell(controls, proc({ comm: "python3", exe: exe("/usr/bin/python3.11") }), sockets([[2, "tcp/1.2.3.4:80"]])).length, 1);
      assert.equal(checkReverseShell(controls, proc({ comm: "sh", exe: exe("/bin/busybox") }), sockets([[0, "udp/1.2.3.4:53"]])).length, 1);
      assert.deepEqual(checkReverseShell(controls, proc(), sockets([[1, "tcp/1.2.3.4:443"]])), [], "curl writing to a socket is not a shell");
      assert.deepEqual(checkReverseShell(controls, proc({ comm: "bash", exe: exe("/usr/bin/bash") }), sockets([])), []);
      assert.deepEqual(checkReverseShell(controls, proc({ comm: "bash" }), undefined), [], "unreadable fds are no finding");
    });
  });

  it("filelessExec flags memfd and deleted executables only", () => {
    const controls: Controls = { filelessExec: { block: true } };
    assert.equal(checkFilelessExec(controls, proc({ exe: exe("/memfd:x", { memfd: true, deleted: true }) }))[0]?.rule, "memfd");
    assert.equal(checkFilelessExec(controls, proc({ exe: exe("/tmp/dropper", { deleted: true }) }))[0]?.rule, "deleted");
    assert.deepEqual(checkFilelessExec(controls, proc()), []);
    assert.deepEqual(checkFilelessExec({}, proc({ exe: exe("/memfd:x", { memfd: true }) })), [], "not configured, no finding");
  });

  describe("drift", () => {
    const controls: Controls = { drift: { block: true } };
    const started = 1_700_000_000_000;
    const file = (ctimeMs: number) => ({ device: "8:1", inode: 12, ctimeMs });
    it("flags an executable changed after its container started, not one from the image", () => {
      assert.match(checkDrift(controls, proc({ exeFile: file(started + 2500) }), started)[0]!.reason, /changed 2\.5 s after its container started/);
      assert.deepEqual(checkDrift(controls, proc({ exeFile: file(started - 86_400_000) }), started), []);
      assert.deepEqual(checkDrift(controls, proc({ exeFile: file(started) }), started), [], "the same instant is not drift");
      assert.deepEqual(checkDrift(controls, proc(), started), [], "unknown ctime is no finding");
      assert.deepEqual(checkDrift(controls, proc({ exeFile: file(started + 1) }), undefined), [], "unknown container start is no finding");
      const memfd = proc({ exe: exe("/memfd:x", { memfd: true, deleted: true }), exeFile: file(started + 1) });
      assert.deepEqual(checkDrift(controls, memfd, started), [], "a memfd is filelessExec's");
    });
    it("flags a script written after the start, run by an interpreter from the image", () => {
      const p = proc({ comm: "sh", exe: exe("/usr/bin/dash"), exeFile: file(started - 1000), script: { path: "/dev/shm/x.sh", file: file(started + 1200) } });
      const [f, more] = checkDrift(controls, p, started);
      assert.equal(more, undefined);
      assert.equal(f!.rule, "script changed after container start");
      assert.equal(f!.reason, "/dev/shm/x.sh (a script run by /usr/bin/dash) was created or changed 1.2 s after its container started");
      assert.deepEqual(checkDrift(controls, proc({ script: { path: "/app/run.sh", file: file(started - 5) } }), started), []);
      assert.deepEqual(checkDrift(controls, proc({ script: { path: "/dev/shm/x.sh" } }), started), [], "an unread script is no finding (its record says why)");
    });
  });
});

describe("standing allows: what the allow table may let go on without asking", () => {
  const started = 1_700_000_000_000;
  const file = { device: "8:1", inode: 12, ctimeMs: started - 86_400_000 };
  const run = (path: string, over: Parameters<typeof proc>[0] = {}) => proc({ comm: path.slice(path.lastIndexOf("/") + 1, path.lastIndexOf("/") + 16), exe: exe(path), exeFile: file, ...over });

  it("holds for a program the policy allows however it runs", () => {
    assert.ok(standingAllow(undefined, run("/usr/bin/curl"), undefined), "no controls");
    const controls: Controls = { executables: { blocked: ["nc", "/tmp/**"], allowed: ["/usr/bin/*"], unidentified: "alert" }, containerExec: { block: true, allowedCommands: ["/usr/bin/ls"] }, drift: { block: true } };
    assert.ok(standingAllow(controls, run("/usr/bin/ls"), started));
    assert.ok(standingAllow({ containerExec: { block: false } }, run("/usr/bin/cat"), started), "findings that only alert are the sidecar's to record from the report");
  });

  it("never holds for what depends on how a program runs, or has no file", () => {
    assert.equal(standingAllow(undefined, run("/usr/bin/curl"), undefined), "any");
    assert.equal(standingAllow(undefined, run("/bin/dash"), undefined), "command", "a shell: only as `dash -c COMMAND` naming no script, with no socket on its stdio");
    assert.equal(standingAllow({ executables: { blocked: ["/bin/dash"], unidentified: "alert" } }, run("/bin/dash"), started), undefined, "a shell blocked as such");
    assert.equal(standingAllow(undefined, run("/tmp/sh", { exe: exe("/tmp/sh", { loader: true }) }), undefined), undefined, "the loader under a shell's name");
    assert.deepEqual(standingAllow(undefined, run("/usr/bin/python3.12"), undefined), { inline: "-c" }, "an interpreter: only as `python3.12 -c CODE`, with no socket on its stdio");
    assert.deepEqual(standingAllow(undefined, run("/usr/bin/perl"), undefined), { inline: "-e" });
    assert.equal(standingAllow({ executables: { blocked: ["python*"], unidentified: "alert" } }, run("/usr/bin/python3.12"), started), undefined, "an interpreter blocked as such");
    assert.ok(!standingAllow(undefined, run("/usr/bin/lua5.4"), undefined), "an interpreter whose inline code may run a file after it (`lua -e CODE FILE`)");
    assert.ok(!standingAllow(undefined, run("/usr/bin/ncat"), undefined), "a relay: a reverse shell's other half");
    assert.ok(!standingAllow(undefined, run("/lib64/ld-linux-x86-64.so.2"), undefined), "the loader: the program it runs is its argv's");
    assert.ok(!standingAllow(undefined, run("/tmp/update-check", { exe: exe("/tmp/update-check", { loader: true }) }), undefined), "a copy of the loader under another name");
    assert.ok(!standingAllow(undefined, run("/usr/bin/busybox"), undefined), "busybox: every applet");
    assert.ok(standingAllow(undefined, run("/usr/bin/shellcheck"), undefined), "a name that only starts like one is no interpreter");
    assert.ok(!standingAllow(undefined, run("/memfd:x", { exe: exe("/memfd:x", { memfd: true, deleted: true }) }), undefined));
    assert.ok(!standingAllow(undefined, run("/tmp/x", { exe: exe("/tmp/x", { deleted: true }) }), undefined));
    assert.ok(!standingAllow(undefined, proc({ exe: exe("/usr/bin/curl") }), undefined), "an executable whose identity is unknown");
  });

  it("never holds when some run of the program would be stopped", () => {
    assert.ok(!standingAllow({ executables: { blocked: ["nc", "/tmp/**"], unidentified: "alert" } }, run("/tmp/tool"), started), "blocked by path");
    assert.ok(!standingAllow({ executables: { blocked: ["curl"], unidentified: "alert" } }, run("/usr/bin/curl"), started), "blocked by name");
    assert.ok(!standingAllow({ executables: { allowed: ["/usr/bin/ls"], unidentified: "alert" } }, run("/usr/bin/cat"), started), "outside the allowed");
  });

  it("holds under a policy that blocks exec sessions: the session's first process asks anyway (its parent is outside the PID namespace)", () => {
    const sessions: Controls = { containerExec: { block: true, allowedCommands: ["/usr/bin/ls"] } };
    assert.ok(standingAllow(sessions, run("/usr/bin/id", { origin: "child", args: ["id"] }), started), "a child in the pod: no session control judges it");
    assert.ok(standingAllow(sessions, run("/usr/bin/id", { origin: "exec-session", args: ["id"] }), started), "judged as the child runs it: the library never lets a session's first stand");
    assert.ok(!standingAllow({ ...sessions, executables: { blocked: ["id"], unidentified: "alert" } }, run("/usr/bin/id", { origin: "child" }), started), "what other controls block still asks");
  });

  it("judges drift against the earliest container start, and not at all without one", () => {
    const drift: Controls = { drift: { block: true } };
    assert.ok(standingAllow(drift, run("/usr/bin/curl"), started));
    assert.ok(!standingAllow(drift, run("/usr/bin/curl", { exeFile: { ...file, ctimeMs: started + 1 } }), started), "written after the earliest start");
    assert.ok(!standingAllow(drift, run("/usr/bin/curl"), undefined), "no container start known yet");
    assert.ok(standingAllow({ drift: { block: false } }, run("/usr/bin/curl", { exeFile: { ...file, ctimeMs: started + 1 } }), started), "drift that only alerts");
  });
});

describe("network controls", () => {
  const outbound = (over: Partial<ConnectionFacts>): ConnectionFacts => ({
    direction: "outbound",
    transport: "tcp",
    localAddress: "10.0.0.5",
    localPort: 40000,
    peerAddress: "93.184.216.34",
    peerPort: 443,
    ...over,
  });
  const controls: Controls = {
    network: {
      blockedOutbound: [{ cidr: "169.254.169.254/32" }, { port: 3333 }, { domain: "*.pool.example" }, { cidr: "fd00::/8", port: 22 }],
      blockedListenPorts: [23],
    },
  };

  it("blocks by CIDR, port, DNS name, and all fields of a rule together", () => {
    assert.equal(checkOutbound(controls, outbound({ peerAddress: "169.254.169.254", peerPort: 80 }))[0]?.rule, "cidr=169.254.169.254/32");
    assert.equal(checkOutbound(controls, outbound({ peerPort: 3333 }))[0]?.rule, "port=3333");
    assert.equal(checkOutbound(controls, outbound({ dnsName: "eu1.POOL.example" }))[0]?.rule, "domain=*.pool.example");
    assert.equal(checkOutbound(controls, outbound({ peerAddress: "fd12::1", peerPort: 22 }))[0]?.rule, "cidr=fd00::/8 port=22");
    assert.deepEqual(checkOutbound(controls, outbound({ peerAddress: "fd12::1", peerPort: 443 })), [], "CIDR matches, port does not");
    assert.deepEqual(checkOutbound(controls, outbound({ peerAddress: "169.254.169.253" })), [], "one address off");
    assert.deepEqual(checkOutbound(controls, outbound({ dnsName: "pool.example.com" })), []);
    assert.deepEqual(checkOutbound(controls, outbound({ direction: "inbound", peerPort: 3333 })), [], "only outbound");
  });

  it("blocks listening on a forbidden port", () => {
    assert.equal(checkListen(controls, { direction: "listen", transport: "tcp", localAddress: "0.0.0.0", localPort: 23 }).length, 1);
    assert.deepEqual(checkListen(controls, { direction: "listen", transport: "tcp", localAddress: "0.0.0.0", localPort: 8080 }), []);
  });

  it("detects a port scan once per burst, and forgets old destinations", () => {
    const scan: Controls = { portScan: { detect: true, distinctPorts: 5, windowSeconds: 10 } };
    const detector = new PortScanDetector();
    const findings = [];
    for (let port = 1; port <= 12; port++) findings.push(...detector.observe(scan, "p1", outbound({ peerPort: port }), port * 100));
    assert.equal(findings.length, 2, "12 ports: two bursts of 5");
    assert.deepEqual(detector.observe(scan, "p2", outbound({ peerPort: 1 }), 0), []);
    const slow = new PortScanDetector();
    const slowFindings = [];
    for (let port = 1; port <= 10; port++) slowFindings.push(...slow.observe(scan, "p3", outbound({ peerPort: port }), port * 3000));
    assert.deepEqual(slowFindings, [], "one port every 3 s never has 5 in a 10 s window");
  });
});
