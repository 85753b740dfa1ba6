/** A realistic ProcessInfo for unit tests of what is built on process facts. */
import type { ProcessInfo } from "../../microenforcer/tracker/process-tracker.ts";

export function processInfo(over: Partial<ProcessInfo> = {}): ProcessInfo {
  return {
    pid: 4242,
    ppid: 1,
    startTicks: 1000,
    comm: "curl",
    exe: { path: "/usr/bin/curl", deleted: false, memfd: false },
    args: ["curl", "-s", "https://example.test"],
    uid: 1000,
    euid: 1000,
    container: { name: "app" },
    origin: "child",
    detection: "trigger",
    image: "exec",
    ...over,
  };
}
