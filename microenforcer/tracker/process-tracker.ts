/**
 * Turns raw capture events into process facts a person asks about: which container,
 * started how (container init, child, or a `kubectl exec` session), descended from which
 * session. Pure state machine: no I/O, fed in order by the sensor.
 *
 * `kubectl exec` in a shared PID namespace: the runtime starts the session from outside
 * the namespace, so like the container's own first process it has PPID 0. The first PPID-0
 * root of a container is its init; a later one while that init lives is an exec session,
 * unless it runs exactly one of that container's exec probes (the kubelet starts those the
 * same way): then it is a probe. A container the injector did not admit (`kubectl debug`)
 * has no init of the pod's: each of its PPID-0 processes is an exec session.
 */
import type { CaptureEvent, Detection, SpawnImage } from "../capture/events.ts";
import { isRuntimeInit } from "../capture/process-watch.ts";
import type { ExeTarget } from "../proc/parse.ts";
import type { ExeIdentity, ScriptFile, Stdio } from "../proc/process-facts.ts";
import type { ProcSnapshot, ReadProblem } from "../proc/reader.ts";
import { ProcessTable } from "./process-table.ts";

export type ExecOrigin = "container-init" | "child" | "exec-session" | "probe";

export interface ContainerRef {
  /** From MICROENFORCER_CONTAINER, which the injector sets on every container. */
  name?: string;
  /** From the cgroup path. */
  id?: string;
  /** The image reference the container was admitted with, by its name (from the injector). */
  image?: string;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  startTicks: number;
  comm: string;
  exe?: ExeTarget;
  args?: string[];
  /** The executable's identity and times as first seen (through the exe link). */
  exeFile?: ExeIdentity;
  cwd?: string;
  /** The script an interpreter runs, as first seen: a program in its own right to the controls. */
  script?: ScriptFile;
  /** Where fds 0–2 went when first seen (interpreters, while the reverse-shell control is on). */
  stdio?: Stdio;
  /** Facts of the current image that could not be read, and why. */
  unread?: ReadProblem[];
  uid: number;
  euid: number;
  container: ContainerRef;
  origin: ExecOrigin;
  /** PID of the exec-session root this process descends from (or is). */
  sessionPid?: number;
  detection: Detection;
  /** `exec` unless it was seen only in its parent's image (see SpawnImage). */
  image: SpawnImage;
  /** Process group and session ids in the pod's PID namespace, when read from stat (0 or absent: outside it, or unknown). */
  pgrp?: number;
  session?: number;
  /** It has a controlling terminal. */
  tty?: boolean;
  /** Its parent, the parent's parent, ... as they were when it started: at most MAX_ANCESTORS, nearest first. */
  ancestors?: Ancestor[];
}

export interface Ancestor {
  pid: number;
  /** Its executable's path, else (unreadable) its task name. */
  executable: string;
}

/** How far back a process's ancestry is kept: enough for `sh -c` chains, bounded per process. */
export const MAX_ANCESTORS = 8;

/**
 * What a preload report of the image `p` runs adds to what the poller read of it: the facts its
 * look missed (what the sensor read itself wins over what a process says), and that the
 * executable is a loader, which only the process itself can tell.
 */
export function addReported(p: ProcessInfo, report: ProcSnapshot): void {
  p.exe ??= report.exe;
  if (report.exe?.loader === true && p.exe !== undefined && p.exe.loader !== true) p.exe = { ...p.exe, loader: true };
  p.exeFile ??= report.exeFile;
  p.cwd ??= report.cwd;
  p.script ??= report.script;
}

/** The executable's base name, else (unreadable) the kernel's task name. */
export function executableName(p: ProcessInfo): string {
  return p.exe?.path.split("/").pop() ?? p.comm;
}

/** The container as people name it: its name, else its id shortened as `docker ps` and `crictl ps` show it. */
export function containerLabel(container: ContainerRef): string {
  return container.name ?? container.id?.slice(0, 12) ?? "?";
}

export type ProcessEvent =
  | { kind: "exec"; process: ProcessInfo; inPlace: boolean; observedAt: number }
  /** exitStatus: the wait(2) status, when the sensor saw the zombie. */
  | { kind: "exit"; process: ProcessInfo; observedAt: number; exitStatus?: number };

interface ContainerState {
  init?: { pid: number; startTicks: number };
  /** The name its init process gave (MICROENFORCER_CONTAINER). */
  name?: string;
}

export class ProcessTracker {
  private readonly processes: ProcessTable;
  /** The sensor's own tree (pid → startTicks): never reported. */
  private readonly own = new Map<number, number>();
  private readonly containers = new Map<string, ContainerState>();
  private readonly selfPid: number;
  private readonly containerImages: Readonly<Record<string, string>>;
  /** The containers the injector admitted, by name. */
  private readonly admitted: ReadonlySet<string>;
  /** Container name → its exec probes, as JSON argv (from the injector). */
  private readonly probes: ReadonlyMap<string, ReadonlySet<string>>;

  /** `processes`: where the running processes go, and exited ones for a grace period. */
  constructor(
    selfPid: number,
    processes = new ProcessTable(),
    containerImages: Readonly<Record<string, string>> = {},
    probes: Readonly<Record<string, readonly string[][]>> = {},
  ) {
    this.selfPid = selfPid;
    this.processes = processes;
    this.containerImages = containerImages;
    this.admitted = new Set(Object.keys(containerImages));
    this.probes = new Map(Object.entries(probes).map(([name, argvs]) => [name, new Set(argvs.map((argv) => JSON.stringify(argv)))]));
  }

  handle(event: CaptureEvent): ProcessEvent[] {
    switch (event.type) {
      case "spawn":
        return this.spawn(event.snapshot, event.detection, event.image, event.observedAt);
      case "exec":
        return this.exec(event.snapshot, event.observedAt);
      case "exit":
        return this.exit(event.pid, event.startTicks, event.observedAt, event.exitStatus);
      default:
        return [];
    }
  }

  /**
   * An exec the preload library reported from inside the process: a new process, or a new
   * image of a known one. The caller has already dropped reports of images it has seen.
   */
  report(snapshot: ProcSnapshot, observedAt: number): ProcessEvent[] {
    return this.known(snapshot) ? this.exec(snapshot, observedAt) : this.spawn(snapshot, "preload", "exec", observedAt);
  }

  /**
   * What the process reported of the image it runs now (cwd, the executable's identity), where
   * the poller could not read it: what the sensor read itself wins over what a process says.
   */
  refresh(snapshot: ProcSnapshot): ProcessInfo | undefined {
    if (!this.known(snapshot)) return undefined;
    const info = this.processes.get(snapshot.pid)!;
    addReported(info, snapshot);
    return info;
  }

  private known(snapshot: ProcSnapshot): boolean {
    return this.lookup(snapshot.pid, snapshot.startTicks) !== undefined;
  }

  /** The process (pid, start time), while it runs or for the table's grace period after. */
  lookup(pid: number, startTicks: number): ProcessInfo | undefined {
    const info = this.processes.get(pid);
    return info?.startTicks === startTicks ? info : undefined;
  }

  get size(): number {
    return this.processes.size;
  }

  /**
   * Start ticks of the earliest started init among the named containers (those the injector
   * set up: the pod's sandbox and the sensor's own are not), when any is known.
   */
  earliestContainerStartTicks(): number | undefined {
    let earliest: number | undefined;
    for (const { init, name } of this.containers.values()) {
      if (name !== undefined && init !== undefined && (earliest === undefined || init.startTicks < earliest)) earliest = init.startTicks;
    }
    return earliest;
  }

  /** Start ticks of the container's current init process, when known. */
  containerStartTicks(container: ContainerRef): number | undefined {
    return this.containers.get(containerKey(container))?.init?.startTicks;
  }

  private parentOf(snapshot: ProcSnapshot): ProcessInfo | undefined {
    // Exited within the table's grace period still counts: a child's exec may be handled
    // after its parent's exit (a preload report that waited behind the poller's events).
    const parent = this.processes.latestOf(snapshot.ppid);
    // A parent cannot be younger than its child: such an entry is a reused PID.
    return parent !== undefined && parent.startTicks <= snapshot.startTicks ? parent : undefined;
  }

  private spawn(snapshot: ProcSnapshot, detection: Detection, image: SpawnImage, observedAt: number): ProcessEvent[] {
    // The other sensor found it first: what this one saw is an image of a known process.
    if (this.known(snapshot)) return image === "exec" ? this.exec(snapshot, observedAt) : [];
    const { pid, ppid, startTicks } = snapshot;
    const ownParent = this.own.get(ppid);
    // The sensor's tree is known from /proc alone: a report's parent is its sender's word (one
    // gone before the sidecar could check it could name the sensor, and hide what its PID runs next).
    if (pid === this.selfPid || (detection !== "preload" && ownParent !== undefined && ownParent <= startTicks)) {
      this.own.set(pid, startTicks);
      return [];
    }
    const parent = this.parentOf(snapshot);
    const container: ContainerRef = {};
    const id = snapshot.containerId ?? parent?.container.id;
    if (id !== undefined) container.id = id;
    // A cgroup's container keeps the name it started with: a process's environment is its own
    // word, and could name another container (or be gone before it is read, a short exec probe).
    const name = (id === undefined ? undefined : this.containers.get(id)?.name) ?? snapshot.container ?? parent?.container.name;
    if (name !== undefined) this.name(container, name);

    const info: ProcessInfo = {
      pid,
      ppid,
      startTicks,
      comm: snapshot.comm,
      uid: snapshot.uid,
      euid: snapshot.euid,
      container,
      origin: "child",
      detection,
      image,
    };
    setImage(info, snapshot);
    setSession(info, snapshot);
    if (parent !== undefined) info.ancestors = [{ pid: parent.pid, executable: parent.exe?.path ?? parent.comm }, ...(parent.ancestors ?? [])].slice(0, MAX_ANCESTORS);
    if (ppid === 0) {
      const state = this.containerState(container);
      const init = state.init && this.processes.get(state.init.pid);
      if (init !== undefined && init.startTicks === state.init!.startTicks) {
        if (this.isProbe(container, snapshot.args)) info.origin = "probe";
        else {
          info.origin = "exec-session";
          info.sessionPid = pid;
        }
      } else if (this.unadmitted(snapshot)) {
        // A container the injector never saw (`kubectl debug`): all of it is somebody's session.
        info.origin = "exec-session";
        info.sessionPid = pid;
      } else {
        info.origin = "container-init";
        state.init = { pid, startTicks };
        if (name !== undefined) state.name = name;
      }
    } else if (parent?.sessionPid !== undefined) {
      info.sessionPid = parent.sessionPid;
    }
    this.processes.add(info);
    return [{ kind: "exec", process: info, inPlace: false, observedAt }];
  }

  private exec(snapshot: ProcSnapshot, observedAt: number): ProcessEvent[] {
    const info = this.processes.get(snapshot.pid);
    if (info === undefined || info.startTicks !== snapshot.startTicks) return [];
    // runc's init seen before it exec'd (found by a rescan, or held past its wait) had runc's
    // environment: the container's name comes with the command it execs, as the injector set it.
    if (info.container.name === undefined && snapshot.container !== undefined && isRuntimeInit(info)) {
      this.name(info.container, snapshot.container);
      if (info.origin === "container-init" && info.container.id !== undefined) this.containerState(info.container).name = snapshot.container;
    }
    info.comm = snapshot.comm;
    info.image = "exec";
    info.uid = snapshot.uid;
    info.euid = snapshot.euid;
    setImage(info, snapshot);
    setSession(info, snapshot);
    return [{ kind: "exec", process: info, inPlace: true, observedAt }];
  }

  private exit(pid: number, startTicks: number, observedAt: number, exitStatus: number | undefined): ProcessEvent[] {
    if (this.own.get(pid) === startTicks) {
      this.own.delete(pid);
      return [];
    }
    const info = this.processes.get(pid);
    if (info === undefined || info.startTicks !== startTicks) return [];
    this.processes.exit(info, observedAt);
    return [{ kind: "exit", process: info, observedAt, ...(exitStatus !== undefined && { exitStatus }) }];
  }

  /** Names a process's container, with the image it was admitted with. */
  private name(container: ContainerRef, name: string): void {
    container.name = name;
    // Own keys only: a container may be named like an Object.prototype member.
    if (Object.hasOwn(this.containerImages, name)) container.image = this.containerImages[name]!;
  }

  /**
   * A container that appeared after the pod was admitted (an ephemeral container): the
   * injector named every container it admitted (MICROENFORCER_CONTAINER, and the workload
   * variable's list), so a PPID-0 process whose environment was read and carries no admitted
   * name is not one of the pod's own. PID 1 is the pod's pause process. Only in an injected
   * pod (the list is known): on a plain host no process carries a name.
   */
  private unadmitted(snapshot: ProcSnapshot): boolean {
    // runc's init still (held past its wait on a slow node) carries runc's environment, not the container's.
    // Nor is one caught inside execve, whose environment this look could not tell.
    if (this.admitted.size === 0 || snapshot.pid === 1 || isRuntimeInit(snapshot) || snapshot.execving === true) return false;
    if (snapshot.container !== undefined) return !this.admitted.has(snapshot.container);
    return !snapshot.problems.some((p) => p.file === "environ");
  }

  /** Exactly one of the container's probes, the container known by its name (a probe names its container). */
  private isProbe(container: ContainerRef, args: string[] | undefined): boolean {
    return container.name !== undefined && args !== undefined && this.probes.get(container.name)?.has(JSON.stringify(args)) === true;
  }

  private containerState(container: ContainerRef): ContainerState {
    const key = containerKey(container);
    let state = this.containers.get(key);
    if (state === undefined) {
      state = {};
      this.containers.set(key, state);
    }
    return state;
  }
}

/** What the snapshot saw of the program the process runs now: replaces all that was known of the one before. */
function setImage(info: ProcessInfo, s: ProcSnapshot): void {
  put(info, "exe", s.exe);
  put(info, "args", s.args);
  put(info, "exeFile", s.exeFile);
  put(info, "cwd", s.cwd);
  put(info, "script", s.script);
  put(info, "stdio", s.stdio);
  put(info, "unread", s.problems.length > 0 ? s.problems : undefined);
}

function put<K extends keyof ProcessInfo>(info: ProcessInfo, key: K, value: ProcessInfo[K] | undefined): void {
  if (value === undefined) delete info[key];
  else info[key] = value;
}

/** Session, group and terminal as stat shows them now (a preload report has no stat: kept as they were). */
function setSession(info: ProcessInfo, snapshot: ProcSnapshot): void {
  if (snapshot.pgrp !== undefined) info.pgrp = snapshot.pgrp;
  if (snapshot.session !== undefined) info.session = snapshot.session;
  if (snapshot.tty !== undefined) info.tty = snapshot.tty;
}

/** The cgroup's container id first: the kernel's, always readable, where a name is the process's own word. */
function containerKey(container: ContainerRef): string {
  return container.id ?? container.name ?? "";
}
