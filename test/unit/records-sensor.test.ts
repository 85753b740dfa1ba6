/** The status record for a /proc read the kernel refused: the true cause, and a fix that fits it. */
import assert from "node:assert/strict";
import { readProblemRecord } from "../../microenforcer/records/sensor-records.ts";
import type { AccessDenial } from "../../microenforcer/proc/access.ts";

const denial = (cause: AccessDenial["cause"], missing: string[] = []): AccessDenial => ({ cause, target: { uid: 0, gid: 0 }, reader: { uid: 1000, gid: 1000 }, missing });

describe("records/sensor-records: read problems", () => {
  it("names another user as the cause, with the injector's fix", () => {
    const r = readProblemRecord({ file: "exe", code: "EACCES", uid: 0, denial: denial("uid") }, 7);
    assert.equal(r.attributes["microenforcer.status.cause"], "exe:EACCES:0:uid");
    assert.equal(r.attributes["microenforcer.access.denial"], "uid");
    assert.match(r.body, /executable paths are missing\. Cause: they run as UID 0 GID 0, the sidecar as UID 1000 GID 1000; the kernel lets only the same user read them\. Fix: run the sidecar with their UID and GID/);
  });

  it("names the capabilities the sidecar lacks, never advising the UID it already has", () => {
    const r = readProblemRecord({ file: "fd", code: "EACCES", uid: 0, denial: denial("capabilities", ["NET_RAW", "SYS_ADMIN"]) }, 7);
    assert.equal(r.attributes["microenforcer.status.cause"], "fd:EACCES:0:capabilities");
    assert.deepEqual(r.attributes["microenforcer.access.missing_capabilities"], ["NET_RAW", "SYS_ADMIN"]);
    assert.match(r.body, /Cause: they hold capabilities the sidecar lacks \(NET_RAW, SYS_ADMIN\)/);
    assert.doesNotMatch(r.body, /app's UID/);
  });

  it("says when nothing short of CAP_SYS_PTRACE helps, and keeps the old advice when the cause is unknown", () => {
    assert.match(readProblemRecord({ file: "environ", code: "EACCES", uid: 101, denial: denial("not-dumpable") }, 7).body, /changed their user or group ids after starting/);
    const unknown = readProblemRecord({ file: "exe", code: "EACCES", uid: 0 }, 7);
    assert.equal(unknown.attributes["microenforcer.status.cause"], "exe:EACCES:0");
    assert.match(unknown.body, /Run the sidecar with the app's UID, GID and capabilities/);
  });
});
