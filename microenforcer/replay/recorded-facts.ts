/**
 * The facts the policy controls decide on, rebuilt from a record's attributes: the inverse
 * of processAttributes and networkRecord. Only what a record carries is rebuilt; what it
 * does not carry stays unknown (see NOT_RECORDED), never guessed.
 */
import type { Detection, SpawnImage } from "../capture/events.ts";
import type { ConnectionFacts } from "../policy/network-controls.ts";
import type { ControlName } from "../policy/process-controls.ts";
import type { BootClock } from "../proc/boot-clock.ts";
import { Attr } from "../records/attributes.ts";
import { EventNames } from "../records/record.ts";
import { absent, type AbsenceReason, type PreloadStatus } from "../tracker/preload-status.ts";
import type { ExecOrigin, ProcessInfo } from "../tracker/process-tracker.ts";

/**
 * Records carry a process's creation time, not the kernel's start ticks: with this clock
 * start ticks are that time in ms, so creationTimeMs gives back the recorded time exactly
 * and (pid, start) still names one process.
 */
export const recordedClock: BootClock = { bootMs: 0, ticksPerSecond: 1000 };

/** Controls whose facts no record carries, and why. */
export const NOT_RECORDED: Partial<Record<ControlName, string>> = {
  reverseShell: "whether a process's stdin, stdout or stderr was a socket is read from /proc at the time and not recorded",
};

type Attributes = Record<string, unknown>;

const int = (v: unknown): number | undefined => (typeof v === "number" && Number.isInteger(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function oneOf<T extends string>(v: unknown, values: readonly T[]): T | undefined {
  return values.find((x) => x === v);
}

const origins = ["container-init", "child", "exec-session", "probe"] as const satisfies readonly ExecOrigin[];
const detections = ["trigger", "rescan", "startup", "preload"] as const satisfies readonly Detection[];

/** The process a record names (exec, exit, network and violation records), when it names one in full. */
export function recordedProcess(a: Attributes): ProcessInfo | undefined {
  const pid = int(a[Attr.processPid]);
  const created = Date.parse(str(a[Attr.processCreationTime]) ?? "");
  if (pid === undefined || Number.isNaN(created)) return undefined;
  const euid = int(a[Attr.processUserId]) ?? -1;
  let image: SpawnImage = "exec";
  if (a[Attr.processForkOnly] === true) image = "fork-only";
  if (a[Attr.processExecUnseen] === true) image = "exec-unseen";
  const p: ProcessInfo = {
    pid,
    ppid: int(a[Attr.processParentPid]) ?? 0,
    startTicks: created - recordedClock.bootMs,
    comm: str(a[Attr.processComm]) ?? str(a[Attr.processExecutableName]) ?? "",
    uid: int(a[Attr.processRealUserId]) ?? euid,
    euid,
    container: {},
    origin: oneOf(a[Attr.execOrigin], origins) ?? "child",
    detection: oneOf(a[Attr.sensorDetection], detections) ?? "trigger",
    image,
  };
  const path = str(a[Attr.processExecutablePath]);
  if (path !== undefined) {
    p.exe = { path, deleted: a[Attr.processExeDeleted] === true, memfd: a[Attr.processExeMemfd] === true };
    if (a[Attr.processExeLoader] === true) p.exe.loader = true;
  }
  const args = a[Attr.processCommandArgs];
  if (Array.isArray(args) && args.every((x) => typeof x === "string")) p.args = args;
  const container = str(a[Attr.k8sContainerName]);
  const containerId = str(a[Attr.containerId]);
  if (container !== undefined) p.container.name = container;
  if (containerId !== undefined) p.container.id = containerId;
  const session = int(a[Attr.execSessionPid]);
  if (session !== undefined) p.sessionPid = session;
  const device = str(a[Attr.processExecutableDevice]);
  const inode = int(a[Attr.processExecutableInode]);
  const changed = Date.parse(str(a[Attr.processExecutableChanged]) ?? "");
  if (device !== undefined && inode !== undefined && !Number.isNaN(changed)) {
    p.exeFile = { device, inode, ctimeMs: changed };
    const modified = Date.parse(str(a[Attr.processExecutableModified]) ?? "");
    const size = int(a[Attr.processExecutableSize]);
    const links = int(a[Attr.processExecutableLinks]);
    if (!Number.isNaN(modified)) p.exeFile.mtimeMs = modified;
    if (size !== undefined) p.exeFile.size = size;
    if (links !== undefined) p.exeFile.nlink = links;
  }
  const cwd = str(a[Attr.processWorkingDirectory]);
  if (cwd !== undefined) p.cwd = cwd;
  const script = str(a[Attr.processScriptPath]);
  if (script !== undefined) {
    p.script = { path: script };
    const scriptDevice = str(a[Attr.processScriptDevice]);
    const scriptInode = int(a[Attr.processScriptInode]);
    const scriptChanged = Date.parse(str(a[Attr.processScriptChanged]) ?? "");
    if (scriptDevice !== undefined && scriptInode !== undefined && !Number.isNaN(scriptChanged)) p.script.file = { device: scriptDevice, inode: scriptInode, ctimeMs: scriptChanged };
  }
  return p;
}

const reasons = ["static", "other-architecture", "secure-execution", "environment-without-preload", "socket-changed", "not-reported", "unknown"] as const satisfies readonly AbsenceReason[];

/** Whether the preload library reported an exec record's program (complete mode), as the record says. */
export function recordedPreload(a: Attributes): PreloadStatus | undefined {
  switch (a[Attr.processPreload]) {
    case "reported":
      return { status: "reported" };
    case "unverified":
      return { status: "unverified" };
    case "absent": {
      const reason = oneOf(a[Attr.processPreloadReason], reasons);
      return reason === undefined ? undefined : absent(reason);
    }
    default:
      return undefined;
  }
}

/** What the network controls decide on, from a connection or listen record. */
export function recordedConnection(eventName: string, a: Attributes): ConnectionFacts | undefined {
  const transport = oneOf(a[Attr.networkTransport], ["tcp", "udp"] as const);
  const localAddress = str(a[Attr.networkLocalAddress]);
  const localPort = int(a[Attr.networkLocalPort]);
  if (transport === undefined || localAddress === undefined || localPort === undefined) return undefined;
  if (eventName === EventNames.networkListen) return { direction: "listen", transport, localAddress, localPort };
  if (eventName !== EventNames.networkConnection) return undefined;
  const direction = oneOf(a[Attr.networkDirection], ["outbound", "inbound"] as const);
  const peerAddress = str(a[Attr.networkPeerAddress]);
  const peerPort = int(a[Attr.networkPeerPort]);
  if (direction === undefined || peerAddress === undefined || peerPort === undefined) return undefined;
  const facts: ConnectionFacts = { direction, transport, localAddress, localPort, peerAddress, peerPort };
  // The controls match the name the process resolved, else the peer's PTR name (as the sensor does).
  const name = str(a[Attr.serverAddress]) ?? str(a[Attr.dnsReverseName]);
  if (name !== undefined) facts.dnsName = name;
  return facts;
}
