import assert from "node:assert/strict";
import type { NetworkObservation } from "../../microenforcer/net/connection-reporter.ts";
import { connectionFacts } from "../../microenforcer/policy/network-controls.ts";
import type { SocketEntry } from "../../microenforcer/proc/socket-table.ts";
import { networkRecord } from "../../microenforcer/records/network-records.ts";
import { processAttributes, processRecord } from "../../microenforcer/records/process-records.ts";
import { recordedClock, recordedConnection, recordedProcess } from "../../microenforcer/replay/recorded-facts.ts";
import { readRecordLine, type RecordedRecord } from "../../microenforcer/replay/recorded.ts";
import { defaultPolicy } from "../../policies/load.ts";
import { processInfo } from "./process-fixture.ts";

const forensics = defaultPolicy().spec.forensics;
const created = Date.parse("2026-11-26T13:41:52.710Z");

function socket(over: Partial<SocketEntry> = {}): SocketEntry {
  return {
    transport: "tcp",
    family: "ipv4",
    localAddress: "10.0.0.5",
    localPort: 40312,
    remoteAddress: "169.254.169.254",
    remotePort: 80,
    state: "ESTABLISHED",
    uid: 1000,
    inode: 991,
    row: "",
    ...over,
  };
}

describe("facts rebuilt from records", () => {
  const processes = {
    "an exec session with its arguments": processInfo({ pid: 212, ppid: 0, startTicks: created, origin: "exec-session", sessionPid: 212 }),
    "a deleted executable": processInfo({ startTicks: created, exe: { path: "/tmp/x", deleted: true, memfd: false } }),
    "an executable's identity as first seen": processInfo({
      startTicks: created,
      exeFile: { device: "0:42", inode: 99, ctimeMs: created - 5000, mtimeMs: created - 86_400_000, size: 4096, nlink: 1 },
      cwd: "/srv",
    }),
    "a script an interpreter ran": processInfo({
      startTicks: created,
      comm: "sh",
      exe: { path: "/usr/bin/dash", deleted: false, memfd: false },
      args: ["sh", "-c", "/dev/shm/x.sh"],
      script: { path: "/dev/shm/x.sh", file: { device: "0:23", inode: 7, ctimeMs: created + 250 } },
    }),
    "a script that could not be read": processInfo({ startTicks: created, comm: "python3", script: { path: "/tmp/gone.py" } }),
    "a memfd": processInfo({ startTicks: created, exe: { path: "/memfd:payload", deleted: false, memfd: true }, image: "fork-only" }),
    "an unreadable executable, another user": processInfo({ startTicks: created, uid: 0, euid: 0, container: { id: "abc123" }, detection: "startup" }),
  };
  delete processes["an unreadable executable, another user"].exe;

  for (const [what, p] of Object.entries(processes)) {
    it(`gives back the process the controls saw: ${what}`, () => {
      // Network and violation records name the process but not how it was found.
      assert.deepEqual(recordedProcess(processAttributes(p, recordedClock, forensics)), { ...p, detection: "trigger", image: "exec" });
      const exec = processRecord({ kind: "exec", process: p, inPlace: false, observedAt: created + 5 }, recordedClock, forensics)!;
      assert.deepEqual(recordedProcess(exec.attributes), p);
    });
  }

  it("leaves argv unknown when the policy did not record arguments, rather than inventing one", () => {
    const p = processInfo({ startTicks: created });
    const rebuilt = recordedProcess(processAttributes(p, recordedClock, { ...forensics, fullCommandArguments: false }));
    assert.equal(rebuilt?.args, undefined);
    assert.equal(rebuilt?.exe?.path, "/usr/bin/curl");
  });

  it("names no process where a record names none in full (an owner PID alone)", () => {
    assert.equal(recordedProcess({ "process.pid": 7 }), undefined);
    assert.equal(recordedProcess({ "process.pid": "7", "process.creation.time": "2026-11-26T13:41:52.710Z" }), undefined);
  });

  const observations: Record<string, NetworkObservation> = {
    outbound: { kind: "connection", direction: "outbound", socket: socket(), attribution: "process", detection: "change" },
    inbound: { kind: "connection", direction: "inbound", socket: socket({ localPort: 8080, remotePort: 51000 }), attribution: "closed", detection: "change" },
    listen: { kind: "listen", socket: socket({ transport: "udp", localPort: 23, remoteAddress: "0.0.0.0", remotePort: 0, state: "CLOSE" }), attribution: "process", detection: "startup" },
  };
  for (const [what, o] of Object.entries(observations)) {
    it(`gives back the connection facts the network controls saw: ${what}`, () => {
      const record = networkRecord({ observation: o, observedAt: created }, recordedClock, forensics);
      assert.deepEqual(recordedConnection(record.eventName, record.attributes), connectionFacts(o));
    });
  }

  it("gives back the peer's DNS name", () => {
    const o = observations.outbound!;
    const name = { name: "metadata.example", source: "forwarder" as const };
    const record = networkRecord({ observation: o, observedAt: created, name }, recordedClock, forensics);
    assert.deepEqual(recordedConnection(record.eventName, record.attributes), connectionFacts(o, name));
  });
});

describe("reading recorded lines", () => {
  it("reads a stdout JSON record", () => {
    const line = JSON.stringify({
      timestamp: "2026-11-26T13:41:52.710Z",
      observedTimestamp: "2026-11-26T13:41:52.713Z",
      severityNumber: 9,
      severityText: "INFO",
      eventName: "microenforcer.process.exec",
      body: "exec /usr/bin/curl",
      attributes: { "process.pid": 212 },
      resource: { "k8s.pod.name": "api" },
    });
    assert.deepEqual(readRecordLine(line), {
      records: [
        { eventName: "microenforcer.process.exec", observedMs: Date.parse("2026-11-26T13:41:52.713Z"), body: "exec /usr/bin/curl", attributes: { "process.pid": 212 }, resource: { "k8s.pod.name": "api" } },
      ],
    });
  });

  it("reads every record of an OTLP/JSON request as the file exporter writes it: int64 as strings, arrays, nanosecond times", () => {
    const line = JSON.stringify({
      resourceLogs: [
        {
          resource: { attributes: [{ key: "k8s.pod.uid", value: { stringValue: "u1" } }] },
          scopeLogs: [
            {
              scope: { name: "microenforcer" },
              logRecords: [
                {
                  timeUnixNano: "1795700512710000000",
                  observedTimeUnixNano: "1795700512713999999",
                  severityNumber: 9,
                  body: { stringValue: "exec" },
                  eventName: "microenforcer.process.exec",
                  attributes: [
                    { key: "process.pid", value: { intValue: "212" } },
                    { key: "process.command_args", value: { arrayValue: { values: [{ stringValue: "nc" }, { stringValue: "-l" }] } } },
                    { key: "microenforcer.process.exe_deleted", value: { boolValue: true } },
                  ],
                },
                { timeUnixNano: "0", observedTimeUnixNano: "0", eventName: "microenforcer.process.exit" },
              ],
            },
          ],
        },
      ],
    });
    const reading = readRecordLine(line) as { records: RecordedRecord[] };
    // The second record has no time at all: not a record the replay can place.
    assert.equal(reading.records.length, 1);
    assert.deepEqual(reading.records[0], {
      eventName: "microenforcer.process.exec",
      observedMs: 1795700512713,
      body: "exec",
      attributes: { "process.pid": 212, "process.command_args": ["nc", "-l"], "microenforcer.process.exe_deleted": true },
      resource: { "k8s.pod.uid": "u1" },
    });
  });

  it("says why a line holds no record", () => {
    assert.deepEqual(readRecordLine("microenforcer: spool full, dropping records"), { skipped: "not JSON" });
    assert.deepEqual(readRecordLine('{"log":"x"}'), { skipped: "JSON, but neither a microenforcer record nor an OTLP logs request" });
    assert.deepEqual(readRecordLine('{"eventName":"x","attributes":{},"observedTimestamp":"yesterday"}'), { skipped: "a record without a valid observedTimestamp" });
  });
});
