import type { AttributeValue, Attributes, HrTime } from "@opentelemetry/api";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import { Attr, OWN_PREFIX } from "../records/attributes.ts";
import { EventNames } from "../records/record.ts";

/** Millisecond precision, computed in integers so no float rounding creeps in. */
export function hrTimeToDate(time: HrTime): Date {
  return new Date(time[0] * 1000 + Math.floor(time[1] / 1e6));
}

/** The stdout JSON contract of DESIGN.md: these keys, this order, on one line. */
export function formatJson(record: ReadableLogRecord): string {
  return JSON.stringify({
    timestamp: hrTimeToDate(record.hrTime).toISOString(),
    observedTimestamp: hrTimeToDate(record.hrTimeObserved).toISOString(),
    severityNumber: record.severityNumber ?? null,
    severityText: record.severityText ?? null,
    eventName: record.eventName ?? null,
    body: record.body ?? null,
    attributes: record.attributes,
    resource: record.resource.attributes,
  });
}

/** Attributes shown first, under a short label, when present. */
const LEADING: ReadonlyArray<readonly [key: string, label: string]> = [
  [Attr.processPid, "pid"],
  [Attr.processParentPid, "ppid"],
  [Attr.processUserId, "uid"],
  [Attr.k8sContainerName, "container"],
  [Attr.execOrigin, "origin"],
  [Attr.networkTransport, "proto"],
  [Attr.networkConnectionState, "state"],
  [Attr.policyName, "policy"],
  [Attr.control, "control"],
  [Attr.action, "action"],
];
const LEADING_KEYS = new Set(LEADING.map(([key]) => key));

/** Width of the longest short event name, network.connection. */
const EVENT_WIDTH = 18;

const ANSI = { reset: "\x1b[0m", bold: "\x1b[1m", dim: "\x1b[2m", red: "\x1b[31m", green: "\x1b[32m", yellow: "\x1b[33m", gray: "\x1b[90m" };
const SEVERITY_COLOR: Readonly<Record<string, string>> = { DEBUG: ANSI.gray, INFO: ANSI.green, WARN: ANSI.yellow, ERROR: ANSI.red };

/**
 * One line for a human at a terminal: local time, severity, short event name, the
 * attributes that identify who did it, then what was done.
 */
export function formatPretty(record: ReadableLogRecord, options: { color: boolean }): string {
  const paint = (code: string | undefined, text: string) => (options.color && code ? `${code}${text}${ANSI.reset}` : text);
  const severity = printable(record.severityText ?? "");
  const event = printable((record.eventName ?? "").replace(OWN_PREFIX, ""));
  const attributes = record.attributes;
  const fields = LEADING.filter(([key]) => attributes[key] !== undefined)
    .map(([key, label]) => `${label}=${renderValue(attributes[key])}`)
    .join(" ");
  const what = describe(record.eventName, attributes, record.body);
  return [
    paint(ANSI.dim, clockTime(hrTimeToDate(record.hrTime))),
    " ",
    paint(SEVERITY_COLOR[severity], severity.padEnd(5)),
    " ",
    paint(ANSI.bold, event.padEnd(EVENT_WIDTH)),
    "  ",
    printable([fields, what].filter((part) => part !== "").join("  ")),
  ]
    .join("")
    .trimEnd();
}

/** The "what happened" column, per event kind. */
function describe(eventName: string | undefined, attributes: Attributes, body: unknown): string {
  const text = (key: string) => {
    const value = attributes[key];
    return value === undefined ? undefined : String(value);
  };
  const fallback = typeof body === "string" ? body : JSON.stringify(body ?? "");
  switch (eventName) {
    case EventNames.processExec:
      return text(Attr.processCommandLine) ?? text(Attr.processExecutablePath) ?? fallback;
    case EventNames.processExit:
      return text(Attr.processExecutablePath) ?? text(Attr.processExecutableName) ?? fallback;
    case EventNames.networkConnection: {
      const local = endpoint(text(Attr.networkLocalAddress), text(Attr.networkLocalPort));
      const peer = endpoint(text(Attr.networkPeerAddress), text(Attr.networkPeerPort));
      const server = text(Attr.serverAddress) ?? text(Attr.dnsReverseName);
      return `${local} -> ${peer}${server ? ` (${server})` : ""}`;
    }
    case EventNames.networkListen:
      return endpoint(text(Attr.networkLocalAddress), text(Attr.networkLocalPort));
    default: {
      // Violations and sensor reports: the sentence, then whatever else they carry.
      const rest = Object.entries(attributes)
        .filter(([key]) => !LEADING_KEYS.has(key))
        .map(([key, value]) => `${key.replace(OWN_PREFIX, "")}=${renderValue(value)}`);
      return [fallback, ...rest].filter((part) => part !== "").join("  ");
    }
  }
}

function endpoint(address = "?", port = "?"): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

function renderValue(value: AttributeValue | undefined): string {
  if (typeof value === "string") return value === "" || /[\s"]/.test(value) ? JSON.stringify(value) : value;
  return Array.isArray(value) ? JSON.stringify(value) : String(value);
}

function clockTime(date: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** Values are attacker-controlled: escape control characters so they cannot drive the terminal. */
function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`);
}
