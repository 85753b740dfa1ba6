import assert from "node:assert/strict";
import { formatJson, formatPretty, hrTimeToDate } from "../../microenforcer/emit/format.ts";
import { logRecord, SECONDS } from "./emit-fixtures.ts";

/** The clock column is local time; the rest of the line is what we check exactly. */
const withoutClock = (line: string) => {
  assert.match(line, /^\d\d:\d\d:\d\d\.\d{3} /);
  return line.slice(13);
};

describe("emit/format", () => {
  describe("hrTimeToDate", () => {
    it("truncates to the millisecond without float drift", () => {
      assert.equal(hrTimeToDate([SECONDS, 999_999_999]).toISOString(), "2026-03-01T12:00:00.999Z");
      assert.equal(hrTimeToDate([SECONDS, 1_000_000]).toISOString(), "2026-03-01T12:00:00.001Z");
    });
  });

  describe("formatJson", () => {
    const record = logRecord({
      attributes: { "process.pid": 42, "process.command_args": ["/usr/bin/curl", "-s", "https://example.com"], "container.id": "abc" },
    });

    it("prints exactly the contract keys, in order, on one line", () => {
      const line = formatJson(record);
      assert.ok(!line.includes("\n"));
      assert.deepEqual(Object.keys(JSON.parse(line)), [
        "timestamp",
        "observedTimestamp",
        "severityNumber",
        "severityText",
        "eventName",
        "body",
        "attributes",
        "resource",
      ]);
    });

    it("carries ISO timestamps, severity, event name, body, attributes (arrays too) and resource", () => {
      assert.deepEqual(JSON.parse(formatJson(record)), {
        timestamp: "2026-03-01T12:00:00.123Z",
        observedTimestamp: "2026-03-01T12:00:01.005Z",
        severityNumber: 9,
        severityText: "INFO",
        eventName: "microenforcer.process.exec",
        body: "exec /usr/bin/curl",
        attributes: { "process.pid": 42, "process.command_args": ["/usr/bin/curl", "-s", "https://example.com"], "container.id": "abc" },
        resource: { "service.name": "microenforcer", "k8s.pod.name": "api-7f9c" },
      });
    });

    it("keeps attribute order as emitted", () => {
      const attributes = { b: "1", a: "2", c: "3" };
      assert.deepEqual(Object.keys(JSON.parse(formatJson(logRecord({ attributes }))).attributes), ["b", "a", "c"]);
    });
  });

  describe("formatPretty", () => {
    it("exec: who first, then the command line", () => {
      const line = formatPretty(
        logRecord({
          attributes: {
            "process.pid": 42,
            "process.parent_pid": 1,
            "process.user.id": 0,
            "k8s.container.name": "app",
            "microenforcer.exec.origin": "exec-session",
            "process.executable.path": "/usr/bin/curl",
            "process.command_line": "/usr/bin/curl -s https://example.com",
          },
        }),
        { color: false },
      );
      assert.equal(
        withoutClock(line),
        "INFO  process.exec        pid=42 ppid=1 uid=0 container=app origin=exec-session  /usr/bin/curl -s https://example.com",
      );
    });

    it("exec without a command line falls back to the executable path", () => {
      const line = formatPretty(logRecord({ attributes: { "process.pid": 7, "process.executable.path": "/bin/sh" } }), { color: false });
      assert.equal(withoutClock(line), "INFO  process.exec        pid=7  /bin/sh");
    });

    it("connection: local -> peer with the DNS name, IPv6 in brackets", () => {
      const line = formatPretty(
        logRecord({
          eventName: "microenforcer.network.connection",
          attributes: {
            "process.pid": 42,
            "network.transport": "tcp",
            "network.connection.state": "established",
            "network.local.address": "fd00::2",
            "network.local.port": 40112,
            "network.peer.address": "10.0.0.1",
            "network.peer.port": 443,
            "server.address": "api.example.com",
          },
        }),
        { color: false },
      );
      assert.equal(
        withoutClock(line),
        "INFO  network.connection  pid=42 proto=tcp state=established  [fd00::2]:40112 -> 10.0.0.1:443 (api.example.com)",
      );
    });

    it("violation: policy fields, the sentence, then the remaining attributes", () => {
      const line = formatPretty(
        logRecord({
          eventName: "microenforcer.policy.violation",
          severityNumber: 13,
          severityText: "WARN",
          body: "blocked executable /usr/bin/nc",
          attributes: {
            "microenforcer.policy.name": "forensics-all",
            "microenforcer.control": "executables",
            "microenforcer.action": "audit",
            "process.pid": 9,
            "process.command_args": ["nc", "-l", "4444"],
            "microenforcer.rule": "blocked pattern",
          },
        }),
        { color: false },
      );
      assert.equal(
        withoutClock(line),
        'WARN  policy.violation    pid=9 policy=forensics-all control=executables action=audit  blocked executable /usr/bin/nc  process.command_args=["nc","-l","4444"]  rule="blocked pattern"',
      );
    });

    it("colours severity and event only when asked", () => {
      const record = logRecord({ attributes: { "process.pid": 1 } });
      assert.ok(!formatPretty(record, { color: false }).includes("\x1b"));
      const coloured = formatPretty(record, { color: true });
      assert.ok(coloured.includes("\x1b[32mINFO \x1b[0m"));
      assert.ok(coloured.includes("\x1b[1mprocess.exec      \x1b[0m"));
    });

    it("escapes control characters from the workload so they cannot drive the terminal", () => {
      const line = formatPretty(logRecord({ attributes: { "process.command_line": "sh -c \x1b[2J\x07echo\rhi" } }), { color: true });
      assert.ok(line.endsWith("sh -c \\x1b[2J\\x07echo\\x0dhi"));
      assert.equal(line.split("\x1b").length - 1, 6, "only our three colour codes and their resets");
    });
  });
});
