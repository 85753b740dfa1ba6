/** Exec records: what the capture worker saw of a process at first sight, and what it could not read. */
import assert from "node:assert/strict";
import { processRecord } from "../../microenforcer/records/process-records.ts";
import { defaultPolicy } from "../../policies/load.ts";
import { processInfo } from "./process-fixture.ts";

const forensics = defaultPolicy().spec.forensics;
const clock = { bootMs: 1_700_000_000_000, ticksPerSecond: 100 };

describe("exec records", () => {
  it("carry the executable's identity and times as first seen, and the working directory", () => {
    const p = processInfo({
      exe: { path: "/usr/bin/kworker", deleted: true, memfd: false },
      exeFile: { device: "0:42", inode: 1234, ctimeMs: Date.parse("2026-11-30T10:00:01.5Z"), mode: 0o100755, mtimeMs: Date.parse("2020-01-01T00:00:00Z"), size: 43_256, nlink: 0 },
      cwd: "/var/tmp",
    });
    const a = processRecord({ kind: "exec", process: p, inPlace: false, observedAt: 0 }, clock, forensics)!.attributes;
    assert.deepEqual(
      [
        a["microenforcer.process.executable.device"],
        a["microenforcer.process.executable.inode"],
        a["microenforcer.process.executable.changed"],
        a["microenforcer.process.executable.modified"],
        a["microenforcer.process.executable.size"],
        a["microenforcer.process.executable.links"],
        a["process.working_directory"],
        a["microenforcer.process.exe_deleted"],
      ],
      ["0:42", 1234, "2026-11-30T10:00:01.500Z", "2020-01-01T00:00:00.000Z", 43_256, 0, "/var/tmp", true],
    );
    assert.equal(a["microenforcer.process.unread"], undefined);
  });

  it("carry the script an interpreter runs, with its identity as first seen", () => {
    const p = processInfo({ comm: "sh", script: { path: "/dev/shm/x.sh", file: { device: "0:23", inode: 77, ctimeMs: Date.parse("2026-11-30T10:00:02Z"), nlink: 0 } } });
    const a = processRecord({ kind: "exec", process: p, inPlace: false, observedAt: 0 }, clock, forensics)!.attributes;
    assert.deepEqual(
      [a["microenforcer.process.script.path"], a["microenforcer.process.script.device"], a["microenforcer.process.script.inode"], a["microenforcer.process.script.changed"]],
      ["/dev/shm/x.sh", "0:23", 77, "2026-11-30T10:00:02.000Z"],
    );
    const unread = processRecord({ kind: "exec", process: processInfo({ script: { path: "/tmp/x.py" } }), inPlace: false, observedAt: 0 }, clock, forensics)!.attributes;
    assert.equal(unread["microenforcer.process.script.path"], "/tmp/x.py", "the path names the program even when its file could not be read");
    assert.equal(unread["microenforcer.process.script.changed"], undefined);
  });

  it("say which facts could not be read, and why, instead of leaving them out silently", () => {
    const p = processInfo({ unread: [{ file: "exe", code: "EACCES", uid: 0 }, { file: "fd", code: "EACCES", uid: 0 }] });
    delete p.exe;
    const a = processRecord({ kind: "exec", process: p, inPlace: false, observedAt: 0 }, clock, forensics)!.attributes;
    assert.deepEqual(a["microenforcer.process.unread"], ["exe:EACCES", "fd:EACCES"]);
    assert.equal(a["process.executable.path"], undefined);
  });
});
