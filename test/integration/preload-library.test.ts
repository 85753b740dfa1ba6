/**
 * The preload library in real programs (glibc, musl, static, aarch64 under qemu) against the
 * sidecar's real report server: what it reports, that enforce mode stops a program before
 * main, and that nothing the sidecar does or fails to do can crash or hang a program.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer as createNetServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeAllowTable, type AllowEntry } from "../../microenforcer/capture/allow-table.ts";
import { ExecReportServer, writeLibraryMode, type LibraryMode, type ReportOutcome, type ReportProblem, type Verification } from "../../microenforcer/capture/exec-report-server.ts";
import { encodeReport, encodeVerdict, parseReport, type ExecReport, type Verdict } from "../../microenforcer/capture/exec-report.ts";
import { builtLibrary } from "../../microenforcer/capture/preload-library.ts";
import { EXEC_SOCKET_FILE } from "../../microenforcer/sidecar-contract.ts";
import { readProcess } from "../../microenforcer/proc/reader.ts";
import { buildPreloadPrograms, loaderOf, type PreloadPrograms } from "../infra/preload-programs.ts";

interface Run {
  code: number | null;
  stderr: string;
  ms: number;
}

describe("preload library in real programs", function () {
  this.timeout(20_000);
  let dir: string;
  let programs: PreloadPrograms;
  let socket: string;
  let server: ExecReportServer | undefined;
  const received: Array<{ report: ExecReport; verification: Verification; live?: ReturnType<typeof readProcess> }> = [];
  const problems: ReportProblem[] = [];
  let answer: (report: ExecReport) => ReportOutcome = () => ({ verdict: { allow: true } });
  const library = builtLibrary();

  before(function () {
    if (!existsSync(library)) throw new Error(`${library} missing: run npm run build`);
    dir = mkdtempSync(join(tmpdir(), "preload-lib-"));
    chmodSync(dir, 0o755);
    programs = buildPreloadPrograms(dir);
    socket = join(dir, EXEC_SOCKET_FILE);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await server?.close();
    server = undefined;
    received.length = 0;
    problems.length = 0;
    answer = () => ({ verdict: { allow: true } });
  });

  async function listen(mode: LibraryMode): Promise<void> {
    writeLibraryMode(socket, mode);
    server = new ExecReportServer({
      socketPath: socket,
      procRoot: "/proc",
      onReport: (report, { verification }) => {
        // A waiting program is still there to compare with.
        const live = report.wait ? readProcess(report.pid, { attribution: () => true }) : undefined;
        received.push({ report, verification, ...(live && { live }) });
        return answer(report);
      },
      onProblem: (p) => problems.push(p),
    });
    await server.ready();
  }

  function run(argv: string[], env: Record<string, string> = {}, preload = library): Promise<Run> {
    const started = performance.now();
    return new Promise((resolve) => {
      const child = spawn(argv[0]!, argv.slice(1), {
        cwd: dir,
        env: { PATH: process.env.PATH!, LD_PRELOAD: preload, MICROENFORCER_EXEC_SOCKET: socket, MICROENFORCER_CONTAINER: "app", ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code, stderr, ms: performance.now() - started }));
    });
  }

  const marker = (name: string): string => join(dir, name);
  /** 40 KB of other variables before ours, and an argv over the report's 8 KB bound. */
  const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`PAD_${i}`, "x".repeat(100 + i)]));
  const args = Array.from({ length: 300 }, (_, i) => `argument-${i}-${"y".repeat(40)}`);
  const ran = (name: string): boolean => existsSync(marker(name));
  const until = async (check: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(check(), what);
  };

  /** A listener on the socket that takes reports unchecked and answers each with `verdict`, where the server's /proc check cannot apply. */
  async function bareListener(verdict: Verdict): Promise<{ reports: ExecReport[]; close: () => void }> {
    const reports: ExecReport[] = [];
    const raw = createNetServer((s) => {
      s.on("error", () => {}); // a program that does not wait hangs up without reading the verdict
      s.once("data", (frame: Buffer) => {
        const parsed = parseReport(frame);
        if (parsed.ok) reports.push(parsed.report);
        s.end(encodeVerdict(verdict));
      });
    });
    rmSync(socket, { force: true });
    await new Promise<void>((resolve) => raw.listen(socket, resolve));
    return { reports, close: () => raw.close() };
  }

  it("reports a glibc program before main with the facts /proc shows for it", async () => {
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    const result = await run([programs.glibc, marker("glibc"), "arg with space"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "", "nothing printed: the library is silent when all is well");
    assert.equal(received.length, 1);
    const { report, verification, live } = received[0]!;
    assert.equal(verification, "live");
    assert.ok(live?.kind === "process");
    const snapshot = live.snapshot;
    assert.equal(report.pid, snapshot.pid);
    assert.equal(report.ppid, process.pid);
    assert.equal(report.startTicks, snapshot.startTicks);
    assert.equal(report.comm, snapshot.comm);
    assert.equal(report.exeLink, programs.glibc);
    assert.deepEqual(report.rawArgs.toString().split("\0"), [programs.glibc, marker("glibc"), "arg with space", ""]);
    assert.equal(report.cwd, dir);
    assert.equal(report.container, "app");
    assert.deepEqual(report.uid, { real: process.getuid!(), effective: process.geteuid!(), saved: process.geteuid!() });
    const st = statSync(programs.glibc);
    assert.equal(report.exe?.inode, st.ino);
    assert.ok(Math.abs(report.exe!.ctimeMs - st.ctimeMs) < 1, `ctime ${report.exe!.ctimeMs} vs ${st.ctimeMs}`);
    assert.equal(report.exe?.mode, st.mode);
    const { stdout } = spawnSync("stat", ["-c", "%Hd:%Ld", programs.glibc], { encoding: "utf8" });
    assert.equal(report.exe?.device, stdout.trim());
    assert.ok(ran("glibc"), "main ran");
  });

  it("loads into a musl program and reports it", async () => {
    await listen({ enforce: false, failure: "allow", timeoutMs: 250 });
    const result = await run([programs.musl, marker("musl")]);
    assert.equal(result.code, 0, result.stderr);
    await until(() => received.length === 1, "the musl program's report arrives");
    assert.equal(received[0]!.report.exeLink, programs.musl);
    assert.equal(received[0]!.report.wait, false, "audit mode does not wait");
    assert.ok(ran("musl"));
  });

  it("loads into an aarch64 program (under qemu-user), reports it and is stopped by a deny", async () => {
    const arm = builtLibrary("arm64");
    assert.ok(existsSync(arm), `${arm} missing: npm run build builds it when aarch64-linux-gnu-gcc is installed (.ci/run)`);
    // qemu-user fakes /proc/self/stat (its start time is off by a tick) and statx of
    // /proc/self/exe (qemu's own file), so the server's /proc check cannot apply here.
    const { reports, close } = await bareListener({ allow: false, reason: "aarch64 says no" });
    try {
      writeLibraryMode(socket, { enforce: true, failure: "allow", timeoutMs: 5000 });
      const result = await run(["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", programs.aarch64, marker("arm")], {}, arm);
      assert.equal(result.code, 126, result.stderr);
      assert.match(result.stderr, /blocked before it ran: aarch64 says no/);
      assert.equal(reports.length, 1);
      assert.equal(reports[0]!.exeLink, programs.aarch64);
      assert.deepEqual(reports[0]!.rawArgs.toString().split("\0"), [programs.aarch64, marker("arm"), ""]);
      assert.equal(reports[0]!.cwd, dir);
      assert.ok(!ran("arm"), "blocked before main");
    } finally {
      close();
    }
  });

  it("enforce: a denied program writes one line on stderr and exits 126 before main", async () => {
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    answer = () => ({ verdict: { allow: false, reason: "executables: it is a blocked executable" } });
    for (const program of [programs.glibc, programs.musl]) {
      const result = await run([program, marker("denied")]);
      assert.equal(result.code, 126);
      assert.equal(result.stderr, `microenforcer: ${program} blocked before it ran: executables: it is a blocked executable\n`);
    }
    assert.ok(!ran("denied"), "main never ran");
  });

  it("enforce: a denied program hangs up only by exiting, so the sidecar's kill on hang-up never beats its own exit", async () => {
    let hangups = 0;
    const sidecar = createNetServer((s) =>
      s.once("data", (frame: Buffer) => {
        const parsed = parseReport(frame);
        if (!parsed.ok || parsed.report.exeLink !== programs.glibc) return void s.end(encodeVerdict({ allow: true }));
        const pid = parsed.report.pid;
        // As the sidecar does with a denied program that hangs up (its wait timed out).
        s.on("end", () => {
          hangups++;
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        });
        s.write(encodeVerdict({ allow: false, reason: "executables: no" }));
      }),
    );
    rmSync(socket, { force: true });
    await new Promise<void>((resolve) => sidecar.listen(socket, resolve));
    try {
      writeLibraryMode(socket, { enforce: true, failure: "allow", timeoutMs: 2000 });
      // Its stderr a full pipe that is read only after 600 ms: the denied program's line holds
      // it up, so a hang-up before its exit would come, and be killed, while it still lives.
      const fifo = marker("stderr.fifo");
      rmSync(fifo, { force: true });
      const script = `mkfifo ${fifo}; (sleep 0.6; cat > /dev/null) < ${fifo} & exec 2> ${fifo}; head -c 65536 /dev/zero >&2; exec ${programs.glibc} ${marker("hangup")}`;
      const child = spawn("/bin/sh", ["-c", script], { env: { PATH: process.env.PATH!, LD_PRELOAD: library, MICROENFORCER_EXEC_SOCKET: socket }, stdio: "ignore" });
      const exited = once(child, "exit");
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(hangups, 0, "no hang-up while the program is held up writing its line");
      const [code, signal] = (await exited) as [number | null, string | null];
      assert.deepEqual([code, signal], [126, null], "it stopped itself, before main");
      assert.ok(!ran("hangup"));
    } finally {
      sidecar.close();
    }
  });

  it("enforce without a sidecar: the failure choice at once, allow by default", async () => {
    writeLibraryMode(socket, { enforce: true, failure: "allow", timeoutMs: 250 });
    rmSync(socket, { force: true });
    const allowed = await run([programs.glibc, marker("nosidecar")]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.ok(allowed.ms < 200, `no wait for a sidecar that is not there (${allowed.ms.toFixed(0)} ms)`);
    assert.ok(ran("nosidecar"));
    writeLibraryMode(socket, { enforce: true, failure: "deny", timeoutMs: 250 });
    const denied = await run([programs.glibc, marker("nosidecar-deny")]);
    assert.equal(denied.code, 126);
    assert.match(denied.stderr, /no verdict from the microenforcer sidecar \(policy failure choice: deny\)/);
    assert.ok(!ran("nosidecar-deny"));
  });

  it("enforce: a sidecar that never answers costs the timeout, then the failure choice", async () => {
    // Accepts and reads, never answers; a second listener never even accepts (full backlog).
    for (const accept of [true, false]) {
      const silent: Server = createNetServer({ pauseOnConnect: !accept }, () => {});
      rmSync(socket, { force: true });
      await new Promise<void>((resolve) => silent.listen({ path: socket, backlog: 1 }, resolve));
      try {
        writeLibraryMode(socket, { enforce: true, failure: "allow", timeoutMs: 250 });
        const result = await run([programs.glibc, marker(`silent-${accept}`)]);
        assert.equal(result.code, 0, result.stderr);
        assert.ok(result.ms >= 240 && result.ms < 1500, `waited ${result.ms.toFixed(0)} ms for a 250 ms timeout`);
        assert.ok(ran(`silent-${accept}`));
      } finally {
        silent.close();
      }
    }
  });

  it("enforce: a sidecar that hangs up without a verdict gets the failure choice at once", async () => {
    const rude = createNetServer((s) => s.once("data", () => s.destroy()));
    rmSync(socket, { force: true });
    await new Promise<void>((resolve) => rude.listen(socket, resolve));
    try {
      writeLibraryMode(socket, { enforce: true, failure: "deny", timeoutMs: 5000 });
      const result = await run([programs.glibc, marker("rude")]);
      assert.equal(result.code, 126);
      assert.ok(result.ms < 2000, `${result.ms.toFixed(0)} ms`);
      assert.ok(!ran("rude"));
    } finally {
      rude.close();
    }
  });

  it("enforce: stopping, continuing and signalling a waiting program does not lose its verdict", async () => {
    // Signals arrive while the library waits; the verdict 150 ms later.
    const slow = createNetServer((s) =>
      s.once("data", (frame: Buffer) => {
        const pid = frame.readInt32LE(12);
        for (const signal of ["SIGSTOP", "SIGCONT", "SIGWINCH", "SIGCHLD"] as const) process.kill(pid, signal);
        setTimeout(() => {
          process.kill(pid, "SIGURG");
          s.end(encodeVerdict({ allow: true }));
        }, 150);
      }),
    );
    rmSync(socket, { force: true });
    await new Promise<void>((resolve) => slow.listen(socket, resolve));
    try {
      writeLibraryMode(socket, { enforce: true, failure: "deny", timeoutMs: 3000 });
      const result = await run([programs.glibc, marker("signals")]);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(result.ms >= 150, `${result.ms.toFixed(0)} ms`);
      assert.ok(ran("signals"));
    } finally {
      slow.close();
    }
  });

  describe("the allow table", () => {
    const generation = 77;
    /** The table entry for `path` as it is now, named by `runBy` (the path the exe link shows). */
    function entry(path: string, runBy = path): AllowEntry {
      const st = statSync(path, { bigint: true });
      const [major, minor] = execFileSync("stat", ["-c", "%Hd %Ld", path], { encoding: "utf8" }).trim().split(" ").map(Number);
      return { major: major!, minor: minor!, inode: st.ino, ctimeNs: st.ctimeNs, path: Buffer.from(runBy) };
    }
    /** A program file of the test's own: its ctime moves with nothing else's. */
    const copyOfGlibc = (name: string): string => {
      copyFileSync(programs.glibc, join(dir, name));
      return join(dir, name);
    };
    const table = (entries: AllowEntry[], gen = generation): void => writeFileSync(join(dir, "allowed"), encodeAllowTable(gen, entries));
    /** Runs argv and says how the library sent its report: waiting for the verdict, or standing. */
    async function how(argv: string[], name: string, preload = library): Promise<"asked" | "standing" | "audit"> {
      received.length = 0;
      const result = await run([...argv, marker(name)], {}, preload);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(ran(name));
      await until(() => received.length === 1, `${name}: the report arrives`);
      const { report } = received[0]!;
      return report.wait ? "asked" : report.standing ? "standing" : "audit";
    }

    it("lets a program it holds go on without waiting, and asks again for any other file, name, or generation", async () => {
      const copy = copyOfGlibc("marker-copy");
      await listen({ enforce: true, failure: "allow", timeoutMs: 2000, generation });
      table([entry(copy)]);
      assert.equal(await how([copy], "table-hit"), "standing");
      assert.equal(await how([programs.musl], "table-other-file"), "asked");
      // The same file through a symlink of another name: its comm is that name.
      const alias = join(dir, "alias");
      execFileSync("ln", ["-sf", copy, alias]);
      assert.equal(await how([alias], "table-symlink"), "asked");
      // A hard link: the same inode under another path (linking moved its ctime: entry made after).
      const hard = join(dir, "hard-copy");
      execFileSync("ln", ["-f", copy, hard]);
      table([entry(copy)]);
      assert.equal(await how([copy], "table-hit-again"), "standing");
      assert.equal(await how([hard], "table-hard-link"), "asked");
      // Written to, or only chmod'ed: its ctime moved.
      chmodSync(copy, 0o700);
      assert.equal(await how([copy], "table-chmod"), "asked");
      table([entry(copy)], generation + 1);
      assert.equal(await how([copy], "table-other-generation"), "asked", "a table of another generation than the mode's is ignored");
      writeFileSync(join(dir, "allowed"), "MEXA garbage");
      assert.equal(await how([copy], "table-garbage"), "asked");
    });

    it("lets a shell it holds go on only as `SHELL -c COMMAND` naming no file, with no network socket on its stdio", async () => {
      const shell = join(dir, "dash");
      copyFileSync("/usr/bin/dash", shell);
      const sourced = join(dir, "sourced.sh");
      const script = join(dir, "script.sh");
      writeFileSync(sourced, ': > "$0"\n'); // sourced, $0 is the shell's: the marker
      writeFileSync(script, ': > "$1"\n');
      await listen({ enforce: true, failure: "allow", timeoutMs: 2000, generation });
      table([{ ...entry(shell), runs: "command" }]);
      assert.equal(await how([shell, "-c", ': > "$0"'], "shell-plain"), "standing");
      // Through a link of another name, as Debian's sh is to dash: a shell whatever its name.
      const link = join(dir, "sh");
      execFileSync("ln", ["-sf", shell, link]);
      assert.equal(await how([link, "-c", ': > "$0"'], "shell-link"), "standing");
      assert.equal(await how([shell, "-c", `. ${sourced}`], "shell-sourced"), "asked", "a command that names a file: a script is a program");
      assert.equal(await how([shell, script], "shell-script"), "asked");
      assert.equal(await how([shell, "-ec", ': > "$0"'], "shell-options"), "asked", "other options: asked");
      // The same plain command with a socket on stdin: python (without the library) execs the shell so.
      const withStdin = (socket: string) =>
        `import os, socket, sys; s = ${socket}; os.dup2(s.fileno(), 0); os.execve(sys.argv[1], sys.argv[1:], {**os.environ, "LD_PRELOAD": "${library}"})`;
      const inet = withStdin("socket.socket(socket.AF_INET, socket.SOCK_DGRAM)");
      assert.equal(await how(["python3", "-c", inet, shell, "-c", ': > "$0"'], "shell-inet", ""), "asked", "a network socket on its stdio, as a reverse shell's: asked");
      const unix = withStdin("socket.socketpair()[0]");
      assert.equal(await how(["python3", "-c", unix, shell, "-c", ': > "$0"'], "shell-unix", ""), "standing", "a unix socket is no reverse shell's (Node's own child stdio is one)");
      assert.equal(await how([programs.glibc], "shell-other"), "asked", "no entry for another file");
    });

    it("lets an interpreter it holds go on only as `INTERPRETER OPTION CODE` with its inline-code option first, with no network socket on its stdio", async () => {
      const perl = join(dir, "perl");
      copyFileSync("/usr/bin/perl", perl);
      const python = realpathSync("/usr/bin/python3");
      const script = join(dir, "script.pl");
      const code = 'open(my $f, ">", $ARGV[0]) or die $!';
      writeFileSync(script, `${code};\n`);
      await listen({ enforce: true, failure: "allow", timeoutMs: 2000, generation });
      table([
        { ...entry(perl), runs: { inline: "-e" } },
        { ...entry(python), runs: { inline: "-c" } },
      ]);
      assert.equal(await how([perl, "-e", code], "perl-inline"), "standing");
      // Debian's python3, a link to python3.11 (not PATH's first python3, which may be a version manager's shim script).
      assert.equal(await how(["/usr/bin/python3", "-c", "import sys; open(sys.argv[1], 'w')"], "python-inline"), "standing", "through its link: an interpreter whatever its name");
      assert.equal(await how([perl, script], "perl-script"), "asked", "a script is a program");
      assert.equal(await how([perl, "-w", "-e", code], "perl-options"), "asked", "another option first: asked");
      assert.equal(await how(["/usr/bin/python3", "-u", "-c", "import sys; open(sys.argv[1], 'w')"], "python-options"), "asked");
      // Its inline code with a socket on stdin: python (without the library) execs it so.
      const inet = `import os, socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); os.dup2(s.fileno(), 0); os.execve(sys.argv[1], sys.argv[1:], {**os.environ, "LD_PRELOAD": "${library}"})`;
      assert.equal(await how(["python3", "-c", inet, perl, "-e", code], "perl-inet", ""), "asked", "a network socket on its stdio, as a reverse shell's: asked");
    });

    it("never lets the first process of a PID namespace stand (a container's, an exec session's: its parent is outside)", async () => {
      const copy = copyOfGlibc("marker-namespace");
      // The namespace's PIDs are not this /proc's, so the server's check cannot apply.
      const { reports, close } = await bareListener({ allow: true });
      try {
        writeLibraryMode(socket, { enforce: true, failure: "allow", timeoutMs: 2000, generation });
        table([entry(copy)]);
        // The library only in the program: neither unshare nor the shell reports.
        const inNamespace = (script: string, name: string) => run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, marker(name)], {}, "");
        const child = await inNamespace(`LD_PRELOAD=${library} ${copy} "$0"; true`, "namespace-child");
        const first = await inNamespace(`LD_PRELOAD=${library} exec ${copy} "$0"`, "namespace-first");
        assert.deepEqual([child.code, first.code], [0, 0], child.stderr + first.stderr);
        assert.ok(ran("namespace-child") && ran("namespace-first"));
        await until(() => reports.length === 2, "both reports arrive");
        assert.deepEqual(
          reports.map((r) => [r.pid, r.ppid, r.wait ? "asked" : r.standing ? "standing" : "audit"]),
          [
            [2, 1, "standing"],
            [1, 0, "asked"],
          ],
          "the same file the table holds: a child in the namespace stands, its first process asks",
        );
      } finally {
        close();
      }
    });

    it("says when its executable is a loader run as a program, under any name, and never lets one stand", async () => {
      const glibcCopy = join(dir, "update-check");
      const muslCopy = join(dir, "healthz");
      copyFileSync(loaderOf(programs.glibc), glibcCopy);
      copyFileSync(loaderOf(programs.musl), muslCopy);
      await listen({ enforce: true, failure: "allow", timeoutMs: 2000, generation });
      // An entry for the copy, as a pod owner who can write the volume would forge it.
      table([entry(glibcCopy)]);
      const loader = async (argv: string[], name: string): Promise<boolean> => {
        assert.equal(await how(argv, name), "asked", `${name}: a loader is always asked about`);
        return received[0]!.report.loader;
      };
      assert.equal(await loader([glibcCopy, programs.glibc], "loader-glibc-copy"), true);
      assert.equal(await loader([muslCopy, programs.musl], "loader-musl-copy"), true);
      assert.equal(await loader([loaderOf(programs.glibc), programs.glibc], "loader-by-name"), true);
      assert.equal(await loader([programs.glibc], "loader-none"), false, "a program the kernel started through its PT_INTERP");
    });

    it("needs a sidecar to take the report: without one, the failure choice", async () => {
      const copy = copyOfGlibc("marker-copy2");
      writeLibraryMode(socket, { enforce: true, failure: "deny", timeoutMs: 250, generation });
      table([entry(copy)]);
      rmSync(socket, { force: true });
      const denied = await run([copy, marker("table-no-sidecar")]);
      assert.equal(denied.code, 126);
      assert.match(denied.stderr, /no verdict from the microenforcer sidecar/);
      assert.ok(!ran("table-no-sidecar"));
    });

    it("means nothing in audit mode, which never waits", async () => {
      const copy = copyOfGlibc("marker-copy3");
      await listen({ enforce: false, failure: "allow", timeoutMs: 250, generation });
      table([entry(copy)]);
      assert.equal(await how([copy], "table-audit"), "audit");
    });
  });

  it("keeps a program's own LD_PRELOAD working beside it", async () => {
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    const result = await run([programs.glibc, marker("both")], { OTHER_PRELOAD_MARK: marker("other") }, `${programs.otherPreload}:${library}`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(marker("other"), "utf8"), "other\n");
    assert.equal(received.length, 1);
    assert.ok(ran("both"));
  });

  it("survives threads and vfork: a threaded program's posix_spawn child reports too", async () => {
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    const result = await run([programs.spawner, programs.glibc, marker("spawned")]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(received.map((r) => r.report.exeLink).sort(), [programs.glibc, programs.spawner].sort());
    assert.ok(ran("spawned"));
  });

  it("is not loaded into static or setuid programs, which run untouched", async () => {
    await listen({ enforce: true, failure: "deny", timeoutMs: 250 });
    assert.equal((await run([programs.static, marker("static")])).code, 0);
    const setuid = join(dir, "marker-setuid");
    copyFileSync(programs.glibc, setuid);
    chmodSync(setuid, 0o4755);
    // nobody may not write into dir: the setuid-root program may.
    const result = await run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", setuid, marker("setuid")]);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(ran("static") && ran("setuid"));
    assert.deepEqual(
      received.map((r) => r.report.exeLink),
      ["/usr/bin/setpriv"],
      "only setpriv reported: the loader ignores LD_PRELOAD for static and setuid programs",
    );
  });

  it("finds its variables past a large environment and bounds a huge argv", async () => {
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    // The library reads its variables wherever they are: here after 40 KB of others.
    const result = await run([programs.glibc, marker("big"), "0", ...args], { ...big });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(received.length, 1);
    const report = received[0]!.report;
    assert.equal(report.truncated.cmdline, true);
    assert.equal(report.rawArgs.length, 8192);
    assert.equal(report.container, "app");
  });

  it("reads argv and its variables from /proc/self files where stat does not say where they are (gVisor)", async () => {
    // The same source, built as a kernel that shows 0 for stat's fields 48-51 would have it run.
    const hidden = join(dir, "libhidden-areas.so");
    const source = new URL("../../preload/exec-report.c", import.meta.url).pathname;
    const flags = ["-std=c11", "-O2", "-fPIC", "-shared", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-DMICROENFORCER_AREAS_HIDDEN"];
    execFileSync("cc", [...flags, "-o", hidden, source]);
    await listen({ enforce: true, failure: "allow", timeoutMs: 2000 });
    const result = await run([programs.glibc, marker("hidden"), "0", ...args], { ...big }, hidden);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(received.length, 1);
    const report = received[0]!.report;
    assert.equal(report.truncated.cmdline, true);
    assert.deepEqual(report.rawArgs.toString().split("\0").slice(0, 4), [programs.glibc, marker("hidden"), "0", args[0]]);
    assert.equal(report.container, "app");
    const small = await run([programs.glibc, marker("hidden-small"), "0", "last"], {}, hidden);
    assert.equal(small.code, 0, small.stderr);
    assert.deepEqual(received[1]!.report.rawArgs.toString().split("\0"), [programs.glibc, marker("hidden-small"), "0", "last", ""]);
  });

  it("says a report is on its way from a connection just made until its report is in, or the connection is a few ms old", async () => {
    let settled = 0;
    const onItsWay = new ExecReportServer({ socketPath: socket, procRoot: "/proc", onReport: () => ({ verdict: { allow: true } }), onProblem: () => {}, onSettled: () => settled++ });
    await onItsWay.ready();
    try {
      assert.equal(onItsWay.reportOnItsWay(), false);
      const client = connect(socket);
      // Checked every loop turn: the window is a few ms.
      let seen = false;
      for (let turn = 0; turn < 10_000 && !seen; turn++) {
        await new Promise((r) => setImmediate(r));
        seen = onItsWay.reportOnItsWay();
      }
      assert.ok(seen, "accepted, no report yet: one on its way");
      await new Promise((r) => setTimeout(r, 10));
      assert.equal(onItsWay.reportOnItsWay(), false, "silent for 10 ms: no report of a library, which sends at once");
      const result = await run([programs.glibc, marker("on-its-way")]);
      assert.equal(result.code, 0, result.stderr);
      await until(() => settled > 0, "the report in, the events held for it may go");
      client.destroy();
    } finally {
      await onItsWay.close();
    }
  });

  it("audit: never waits, whatever the sidecar does", async () => {
    const silent = createNetServer({ pauseOnConnect: true }, () => {});
    rmSync(socket, { force: true });
    await new Promise<void>((resolve) => silent.listen({ path: socket, backlog: 1 }, resolve));
    try {
      writeLibraryMode(socket, { enforce: false, failure: "deny", timeoutMs: 250 });
      for (let i = 0; i < 5; i++) {
        const result = await run([programs.glibc]);
        assert.equal(result.code, 0);
        assert.ok(result.ms < 200, `${result.ms.toFixed(0)} ms`);
      }
    } finally {
      silent.close();
    }
  });

  it("reads a report whose process exited before the sidecar looked as unverified, and drops forged ones", async () => {
    await listen({ enforce: false, failure: "allow", timeoutMs: 250 });
    const send = (report: ExecReport): Promise<void> =>
      new Promise((resolve) => {
        const c = connect(socket, () => c.end(encodeReport(report)));
        c.on("close", () => resolve());
      });
    const self = readProcess(process.pid, { attribution: () => false });
    assert.ok(self.kind === "process");
    const base: ExecReport = {
      wait: false, standing: false, loader: false, pid: process.pid, ppid: 1, startTicks: self.snapshot.startTicks, comm: "x",
      uid: { real: 0, effective: 0, saved: 0 }, gid: { real: 0, effective: 0, saved: 0 },
      exeLink: "/bin/x", rawArgs: Buffer.from("x\0"), truncated: { exe: false, cmdline: false },
    };
    await send({ ...base, startTicks: self.snapshot.startTicks + 1 }); // younger than the live holder of the PID
    await send({ ...base, pid: 4_000_000, startTicks: 1e12 }); // starts in the future
    await send({ ...base, pid: 4_000_000, startTicks: 5 }); // long gone, cannot be checked
    await until(() => received.length === 1 && problems.length === 1, "all three handled");
    assert.deepEqual(received.map((r) => r.verification), ["unverified"]);
    // The first forged report is said at once; the next of the window as a count, at its end.
    await server!.close();
    server = undefined;
    assert.deepEqual(problems.map((p) => [p.kind, p.count]), [["forged", 1], ["forged", 1]]);
    assert.match(problems[0]!.detail, /before the claimed start/);
  });
});
