/** readProcess on a recorded /proc entry: process, thread, or gone. */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readProcess } from "../../microenforcer/proc/reader.ts";

const fixture = (name: string): string => readFileSync(new URL(`../fixtures/proc/${name}`, import.meta.url), "utf8");

describe("readProcess", () => {
  let root: string;
  /** PID 10518's stat and status (a `cat`), its status's Tgid line replaced. */
  const entry = (tgid: number): void => {
    const dir = join(root, "10518");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "stat"), fixture("stat-cat.txt"));
    writeFileSync(join(dir, "status"), fixture("status-cat.txt").replace(/^Tgid:\t\d+$/m, `Tgid:\t${tgid}`));
  };
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), "proc-"))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const read = () => readProcess(10518, { attribution: () => false }, root);

  it("reads a process, a thread of another one, and a PID with no entry", () => {
    entry(10518);
    assert.equal(read().kind, "process");
    entry(10500);
    assert.deepEqual(read(), { kind: "thread", tgid: 10500 });
    assert.equal(readProcess(4242, { attribution: () => false }, root).kind, "gone");
  });

  it("takes a kernel thread for one, never for a process", () => {
    const dir = join(root, "2");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "stat"), fixture("stat-kthreadd.txt"));
    writeFileSync(join(dir, "status"), fixture("status-cat.txt").replace(/^Tgid:\t\d+$/m, "Tgid:\t2").replace(/^Pid:\t\d+$/m, "Pid:\t2"));
    assert.deepEqual(readProcess(2, { attribution: () => true }, root), { kind: "kernel-thread" });
  });

  it("keeps the executable of a process that exits between reading its argv and its exe link", async () => {
    entry(10518);
    const dir = join(root, "10518");
    symlinkSync("/bin/cat", join(dir, "exe"));
    // cmdline as a FIFO whose writer removes the exe link before it closes: the process's
    // memory (and with it its exe link) is gone just after its argv was read, as at exit.
    assert.equal(spawnSync("mkfifo", [join(dir, "cmdline")]).status, 0);
    const writer = spawn("sh", ["-c", `exec 3>"$1"; printf 'sh\\0/dev/shm/x.sh\\0' >&3; rm "$2"; exec 3>&-`, "sh", join(dir, "cmdline"), join(dir, "exe")]);
    const exited = new Promise((resolve) => writer.on("exit", resolve));
    const result = read();
    await exited;
    assert.equal(result.kind, "process");
    const snapshot = (result as Extract<typeof result, { kind: "process" }>).snapshot;
    assert.deepEqual(snapshot.args, ["sh", "/dev/shm/x.sh"]);
    assert.equal(snapshot.exe?.path, "/bin/cat", "the executable seen before argv, not a record without one");
    assert.equal(snapshot.exeFile?.inode, statSync("/bin/cat").ino);
    assert.ok(!snapshot.problems.some((p) => p.file === "exe"), JSON.stringify(snapshot.problems));
  });

  it("tells a root caught across an exec (environment emptied, or name changed, under the look) from one that has no environment", async () => {
    entry(10518);
    const dir = join(root, "10518");
    symlinkSync("/usr/bin/nsenter", join(dir, "exe"));
    writeFileSync(join(dir, "cmdline"), `${["nsenter", "-t", "42", "--", "python3"].join("\0")}\0`);
    // environ as a FIFO whose writer lays out the new image's argv and closes it empty: execve
    // installed the new image between the argv and environ reads and has not set up its stack yet.
    assert.equal(spawnSync("mkfifo", [join(dir, "environ")]).status, 0);
    const writer = spawn("sh", ["-c", `exec 3>"$1"; printf 'python3\\0' > "$2"; exec 3>&-`, "sh", join(dir, "environ"), join(dir, "cmdline")]);
    const exited = new Promise((resolve) => writer.on("exit", resolve));
    const attributed = () => readProcess(10518, { attribution: () => true }, root) as Extract<ReturnType<typeof readProcess>, { kind: "process" }>;
    const caught = attributed().snapshot;
    await exited;
    assert.equal(caught.execving, true, "not a process without a container");
    assert.equal(caught.container, undefined);
    assert.ok(!caught.problems.some((p) => p.file === "environ"), JSON.stringify(caught.problems));
    // `env -i`: an empty environment, the same argv before and after.
    rmSync(join(dir, "environ"));
    writeFileSync(join(dir, "environ"), "");
    assert.equal(attributed().snapshot.execving, undefined);
    writeFileSync(join(dir, "environ"), "HOME=/\0MICROENFORCER_CONTAINER=web\0");
    assert.equal(attributed().snapshot.container, "web");
    // runc's init read by stat, the command it exec'd by argv: the name changed under the look.
    rmSync(join(dir, "environ"));
    assert.equal(spawnSync("mkfifo", [join(dir, "environ")]).status, 0);
    const renamer = spawn("sh", ["-c", `exec 3>"$1"; sed -i 's/(cat)/(python3)/' "$2"; printf 'MICROENFORCER_CONTAINER=web\\0' >&3; exec 3>&-`, "sh", join(dir, "environ"), join(dir, "stat")]);
    const renamed = new Promise((resolve) => renamer.on("exit", resolve));
    const straddled = attributed().snapshot;
    await renamed;
    assert.equal(straddled.comm, "cat");
    assert.equal(straddled.execving, true, "stat and argv of two images");
  });

  it("takes a process being reaped (Tgid 0: detached from its PIDs) as gone, not as a thread", () => {
    entry(0);
    assert.deepEqual(read(), { kind: "gone" });
  });
});
