/** readProcess on a recorded /proc entry: process, thread, or gone. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

  it("takes a process being reaped (Tgid 0: detached from its PIDs) as gone, not as a thread", () => {
    entry(0);
    assert.deepEqual(read(), { kind: "gone" });
  });
});
