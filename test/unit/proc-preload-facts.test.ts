import assert from "node:assert/strict";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { readPreloadFacts } from "../../microenforcer/proc/preload-facts.ts";
import { readExecFingerprint } from "../../microenforcer/proc/reader.ts";
import { FakeProc } from "./fake-proc.ts";

/** A 64-bit x86_64 ELF executable's headers: one program header, PT_INTERP naming `interpreter` (dynamic) or PT_LOAD (static). */
function elf(interpreter?: string): Buffer {
  const header = Buffer.alloc(64 + 56);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // 64-bit
  header[5] = 1; // little-endian
  header[6] = 1;
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(62, 18); // x86_64
  header.writeBigUInt64LE(64n, 32); // e_phoff
  header.writeUInt16LE(56, 54); // e_phentsize
  header.writeUInt16LE(1, 56); // e_phnum
  const path = interpreter === undefined ? Buffer.alloc(0) : Buffer.from(`${interpreter}\0`);
  header.writeUInt32LE(interpreter === undefined ? 1 : 3, 64); // PT_LOAD or PT_INTERP
  header.writeBigUInt64LE(BigInt(header.length), 64 + 8); // p_offset
  header.writeBigUInt64LE(BigInt(path.length), 64 + 32); // p_filesz
  return Buffer.concat([header, path]);
}

describe("preload facts: what /proc tells of a process that did not report", () => {
  let proc: FakeProc;
  let program: string;
  const facts = (): ReturnType<typeof readPreloadFacts> => readPreloadFacts(10, readExecFingerprint(10, proc.root)!, "MICROENFORCER_EXEC_SOCKET", proc.root);

  beforeEach(() => {
    proc = new FakeProc();
    program = join(proc.root, "program");
    writeFileSync(program, elf("/lib64/ld-linux-x86-64.so.2"), { mode: 0o755 });
    proc.add({ pid: 10, ppid: 1, comm: "program", startTicks: 500, exe: program, args: [program] });
    writeFileSync(join(proc.root, "10/environ"), "LD_PRELOAD=/lib.so\0MICROENFORCER_EXEC_SOCKET=/run/exec.sock\0");
  });
  afterEach(() => proc.cleanup());

  it("reads how the program is loaded, its setuid bits and the two variables", () => {
    assert.deepEqual(facts(), {
      linking: { kind: "dynamic", interpreter: "/lib64/ld-linux-x86-64.so.2", machine: 62, wide: true },
      setid: false,
      environ: { ldPreload: "/lib.so", socket: "/run/exec.sock" },
    });
  });

  it("reads a program again once its file was rewritten in place: what was remembered of it no longer holds", async () => {
    assert.equal(facts().linking?.kind, "dynamic");
    assert.equal(facts().linking?.kind, "dynamic");
    await sleep(20); // past the file system's timestamp granularity: the write moves ctime
    const dynamic = elf("/lib64/ld-linux-x86-64.so.2");
    writeFileSync(program, Buffer.concat([elf(), Buffer.alloc(dynamic.length - elf().length)])); // the same size
    assert.equal(facts().linking?.kind, "static");
  });

  it("sees a setuid bit set after the program was first read", async () => {
    assert.equal(facts().setid, false);
    await sleep(20);
    chmodSync(program, 0o4755);
    assert.equal(facts().setid, true);
  });
});
