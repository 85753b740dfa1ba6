/**
 * What the capture worker reads at first sight, against real processes: the executable's
 * identity through the process's own exe link (it outlives the file), the working
 * directory, and where an interpreter's stdio goes.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, realpathSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readProcess, type ProcSnapshot } from "../../microenforcer/proc/reader.ts";

function snapshot(pid: number, stdio = false): ProcSnapshot {
  const result = readProcess(pid, { attribution: () => false, stdio });
  assert.equal(result.kind, "process");
  return (result as Extract<typeof result, { kind: "process" }>).snapshot;
}

/** Resolves once the child's exe link shows `path` (its exec is done). */
async function execed(child: ChildProcess, path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const s = snapshot(child.pid!);
    if (s.exe?.path === path && (s.args?.length ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${path} never ran`);
}

describe("first-sight process facts on real processes", () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "first-sight-"))));
  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("reads the executable's identity through the exe link, and it holds after the file is deleted", async () => {
    const dropped = join(dir, "dropped");
    copyFileSync("/bin/sleep", dropped);
    const before = statSync(dropped);
    const child = spawn(dropped, ["5"], { cwd: dir, stdio: "ignore" });
    children.push(child);
    await execed(child, dropped);
    unlinkSync(dropped);
    const s = snapshot(child.pid!);
    assert.deepEqual(s.exe, { path: dropped, deleted: true, memfd: false });
    assert.equal(s.exeFile?.inode, before.ino);
    assert.equal(s.exeFile?.size, before.size);
    assert.equal(s.exeFile?.mtimeMs, before.mtimeMs);
    assert.equal(s.exeFile?.nlink, 0);
    assert.ok(s.exeFile!.ctimeMs >= before.ctimeMs, "unlinking changed the inode's ctime, never back");
    const device = spawnSync("stat", ["-L", "-c", "%Hd:%Ld", `/proc/${child.pid}/exe`], { encoding: "utf8" }).stdout.trim();
    assert.equal(s.exeFile?.device, device);
    assert.equal(s.cwd, dir);
    assert.deepEqual(s.problems, []);
  });

  it("reads the script an interpreter runs: through the fd it holds after the file is deleted, and through a symlink", async () => {
    const script = join(dir, "run.sh");
    writeFileSync(script, "sleep 5\n");
    const before = statSync(script);
    symlinkSync(script, join(dir, "link.sh"));
    const bash = spawn("bash", ["link.sh"], { cwd: dir, stdio: "ignore" });
    children.push(bash);
    await execed(bash, "/usr/bin/bash");
    let s = snapshot(bash.pid!);
    assert.deepEqual(s.script?.path, script, "relative to the working directory, the symlink resolved");
    assert.equal(s.script?.file?.inode, before.ino);
    // bash opens its script (on fd 255) once it has started: then the fd is read, deleted or not.
    for (let i = 0; i < 100 && !spawnSync("ls", ["-l", `/proc/${bash.pid}/fd`], { encoding: "utf8" }).stdout.includes(script); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    unlinkSync(script);
    s = snapshot(bash.pid!);
    assert.equal(s.script?.file?.inode, before.ino);
    assert.equal(s.script?.file?.nlink, 0);
    assert.deepEqual(s.problems, []);
    // `bash <(…)`: the script is the process's own fd 63, a pipe, not the reader's.
    const fromPipe = spawn("bash", ["-c", "exec bash <(echo 'sleep 5')"], { stdio: "ignore" });
    children.push(fromPipe);
    for (let i = 0; i < 200 && snapshot(fromPipe.pid!).script === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    const piped = snapshot(fromPipe.pid!).script;
    assert.match(piped?.path ?? "", /^\/dev\/fd\/\d+$/);
    assert.equal(piped?.file?.inode, statSync(`/proc/${fromPipe.pid}/fd/${piped!.path.split("/").pop()}`).ino);
    const python = spawn("/usr/bin/python3", ["-c", "import time; time.sleep(5)"], { stdio: "ignore" });
    children.push(python);
    await execed(python, realpathSync("/usr/bin/python3"));
    assert.equal(snapshot(python.pid!).script, undefined, "inline code is no script");
  });

  it("reads where an interpreter's stdio goes, with the TCP peer, only when asked", async () => {
    const server = createServer((socket) => socket.on("error", () => undefined));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      // bash's /dev/tcp puts a socket on stdin and stdout; stderr stays /dev/null.
      const child = spawn("bash", ["-c", `exec 0<>/dev/tcp/127.0.0.1/${port} 1>&0; exec sleep 5 <&0`], { stdio: "ignore" });
      children.push(child);
      await execed(child, "/usr/bin/sleep");
      assert.equal(snapshot(child.pid!, true).stdio, undefined, "sleep is no interpreter: its stdio is not read");
      const shell = spawn("bash", ["-c", `exec 0<>/dev/tcp/127.0.0.1/${port} 1>&0; while :; do sleep 0.05; done`], { stdio: "ignore" });
      children.push(shell);
      await execed(shell, "/usr/bin/bash");
      let s = snapshot(shell.pid!, true);
      for (let i = 0; i < 100 && s.stdio?.inet.size !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10)); // the redirection comes after the exec
        s = snapshot(shell.pid!, true);
      }
      assert.match(s.stdio!.targets[0]!, /^socket:\[\d+\]$/);
      assert.equal(s.stdio!.targets[0], s.stdio!.targets[1]);
      assert.equal(s.stdio!.targets[2], "/dev/null");
      assert.deepEqual([...s.stdio!.inet], [[0, `tcp/127.0.0.1:${port}`], [1, `tcp/127.0.0.1:${port}`]]);
      assert.equal(snapshot(shell.pid!, false).stdio, undefined, "not read when the policy does not ask");
    } finally {
      server.close();
    }
  });
});
