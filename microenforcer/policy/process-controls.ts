/**
 * Process controls of a RuntimePolicy as pure functions: (policy, process facts) →
 * findings. The facts come as the capture worker first saw them (or, for a shell's later
 * redirection, as the caller read them again); nothing here reads the system.
 */
import { containerExecRule, matchesExecutable } from "../../policies/executable-pattern.ts";
import type { CoveredRuns } from "../capture/allow-table.ts";
import type { RuntimePolicySpec } from "../../policies/schema.ts";
import { givesCommandLoop, runsCommandLoop } from "../proc/interpreters.ts";
import { inlineCodeOption, isShell, runsNamedFiles } from "../proc/script-argv.ts";
import type { Stdio } from "../proc/process-facts.ts";
import type { PreloadStatus } from "../tracker/preload-status.ts";
import { containerLabel, executableName, type ProcessInfo } from "../tracker/process-tracker.ts";

export type ControlName = "containerExec" | "executables" | "reverseShell" | "filelessExec" | "drift" | "preloadEvasion" | "network" | "portScan";

export interface Finding {
  control: ControlName;
  /** The policy entry that matched (a glob, a CIDR, a port), or the control's own rule. */
  rule: string;
  /** One sentence for the record body. */
  reason: string;
  /** Whether the policy asks to stop it (honoured only in enforce mode). */
  block: boolean;
}

export type Controls = NonNullable<RuntimePolicySpec["controls"]>;

/** `kubectl exec` sessions, unless their command is allowed. */
export function checkContainerExec(controls: Controls, p: ProcessInfo): Finding[] {
  const rule = controls.containerExec;
  if (rule === undefined || p.origin !== "exec-session") return [];
  const allowed = rule.allowedCommands ?? [];
  const argv0 = p.args?.[0];
  const isAllowed = allowed.some(
    (pattern) => matchesExecutable(pattern, p.exe?.path, executableName(p)) || (argv0 !== undefined && matchesExecutable(pattern, argv0, argv0)),
  );
  if (isAllowed) return [];
  return [
    {
      control: "containerExec",
      rule: containerExecRule(allowed),
      reason: `exec session into container ${containerLabel(p.container)} runs ${p.exe?.path ?? p.comm}`,
      block: rule.block,
    },
  ];
}

/**
 * Blocked executables, or anything outside a non-empty allow-list. A script an interpreter
 * runs is a program too: it is checked as an executable, beside its interpreter.
 */
export function checkExecutables(controls: Controls, p: ProcessInfo): Finding[] {
  const rule = controls.executables;
  if (rule === undefined) return [];
  const name = executableName(p);
  const path = p.exe?.path;
  const script = p.script?.path;
  const scriptName = script?.slice(script.lastIndexOf("/") + 1) ?? "";
  const runBy = ` (a script run by ${path ?? name})`;
  const blocked = (rule.blocked ?? []).find((pattern) => matchesExecutable(pattern, path, name));
  if (blocked !== undefined) {
    return [{ control: "executables", rule: blocked, reason: `${path ?? name} is a blocked executable`, block: true }];
  }
  const blockedScript = script === undefined ? undefined : (rule.blocked ?? []).find((pattern) => matchesExecutable(pattern, script, scriptName));
  if (blockedScript !== undefined) {
    return [{ control: "executables", rule: blockedScript, reason: `${script}${runBy} is a blocked executable`, block: true }];
  }
  const allowed = rule.allowed ?? [];
  if (allowed.length > 0 && path === undefined) {
    // Unreadable (another UID, capabilities the sidecar lacks, a worker that dropped root):
    // its name is its own choice (comm), so nothing can vouch for it.
    const reason = `unidentified executable: ${p.comm} (pid ${p.pid}) runs a program the sensor may not read, so it cannot be checked against the allowed executables`;
    return [{ control: "executables", rule: "unidentified executable", reason, block: rule.unidentified === "block" }];
  }
  if (allowed.length > 0 && !allowed.some((pattern) => matchesExecutable(pattern, path, name))) {
    return [{ control: "executables", rule: "allowed", reason: `${path ?? name} is not in the allowed executables`, block: true }];
  }
  if (allowed.length > 0 && script !== undefined && !allowed.some((pattern) => matchesExecutable(pattern, script, scriptName))) {
    return [{ control: "executables", rule: "allowed", reason: `${script}${runBy} is not in the allowed executables`, block: true }];
  }
  return [];
}

export function isInterpreter(p: ProcessInfo): boolean {
  return runsCommandLoop(executableName(p), p.comm, p.script?.path);
}

/**
 * Falco's and Tracee's definition: a shell or interpreter whose stdin, stdout or stderr is
 * a network socket (a local Unix socket is not).
 */
export function checkReverseShell(controls: Controls, p: ProcessInfo, stdio: Stdio | undefined): Finding[] {
  const rule = controls.reverseShell;
  if (rule === undefined || stdio === undefined || stdio.inet.size === 0 || !isInterpreter(p)) return [];
  const [fd, peer] = [...stdio.inet][0]!;
  const fds = [...stdio.inet.keys()].map((n) => ["stdin", "stdout", "stderr"][n]).join(", ");
  return [
    {
      control: "reverseShell",
      rule: "interpreter with network stdio",
      reason: `${executableName(p)} has its ${fds} connected to ${peer} (fd ${fd})`,
      block: rule.block,
    },
  ];
}

/** Code with no file behind it: a memfd, or an executable deleted after it started. */
export function checkFilelessExec(controls: Controls, p: ProcessInfo): Finding[] {
  const rule = controls.filelessExec;
  if (rule === undefined || p.exe === undefined || !(p.exe.memfd || p.exe.deleted)) return [];
  const how = p.exe.memfd ? "an anonymous memfd" : "a deleted file";
  return [{ control: "filelessExec", rule: p.exe.memfd ? "memfd" : "deleted", reason: `${p.exe.path} runs from ${how}`, block: rule.block }];
}

/**
 * Drift: the program was created or changed after its container started — the executable,
 * and a script an interpreter runs. ctime, not mtime: anyone can set mtime back with touch,
 * nobody but the kernel sets ctime. A deleted file's ctime is when it was unlinked: a
 * program deleted after the start is drift too. The times are those seen at first sight.
 */
export function checkDrift(controls: Controls, p: ProcessInfo, containerStartMs: number | undefined): Finding[] {
  const rule = controls.drift;
  if (rule === undefined || containerStartMs === undefined || p.exe === undefined) return [];
  const findings: Finding[] = [];
  const changed = (ctimeMs: number | undefined): string | undefined =>
    ctimeMs !== undefined && ctimeMs > containerStartMs ? `was created or changed ${((ctimeMs - containerStartMs) / 1000).toFixed(1)} s after its container started` : undefined;
  // A memfd's inode is created with the process: not a file that drifted (filelessExec's case).
  const exe = p.exe.memfd ? undefined : changed(p.exeFile?.ctimeMs);
  if (exe !== undefined) findings.push({ control: "drift", rule: "executable changed after container start", reason: `${p.exe.path} ${exe}`, block: rule.block });
  const script = changed(p.script?.file?.ctimeMs);
  if (script !== undefined) {
    findings.push({ control: "drift", rule: "script changed after container start", reason: `${p.script!.path} (a script run by ${p.exe.path}) ${script}`, block: rule.block });
  }
  return findings;
}

/**
 * A program that should have loaded the preload library and did not: its environment
 * dropped LD_PRELOAD or diverted the socket, or no report came although all looked right;
 * or, in enforce mode, one whose library went on without asking (it read another mode).
 * Static and setuid programs are not findings here: the loader never preloads them.
 */
export function checkPreloadEvasion(controls: Controls, p: ProcessInfo, preload: PreloadStatus): Finding[] {
  const rule = controls.preloadEvasion;
  if (rule === undefined) return [];
  const program = p.exe?.path ?? p.comm;
  if (preload.status === "absent" && preload.evasion) {
    return [{ control: "preloadEvasion", rule: preload.reason, reason: `${program} ran without the preload library (${preload.reason})`, block: rule.block }];
  }
  if (preload.status !== "absent" && preload.verdict === "unasked") {
    return [{ control: "preloadEvasion", rule: "unasked", reason: `${program} went on without asking for a verdict in enforce mode (its preload library read another mode)`, block: rule.block }];
  }
  return [];
}

/**
 * Whether the controls allow this executable at this path however it runs — whatever its
 * arguments, whatever its stdio, in any container (drift is judged against the earliest
 * container start, where it is strictest) — so that the allow table may let it go on without
 * asking again, and for which runs: `any`, or those an entry covers (capture/allow-table.ts
 * CoveredRuns: a shell's plain commands, an interpreter's inline code). Never an interpreter
 * run otherwise, a relay or the loader (the file its argv names, or a reverse shell, depends
 * on how it runs) nor code without a file; only by the name its path gives (the library checks that its comm is
 * that name; a shell's or an interpreter's entry holds under any, it is one anyway).
 * The container-exec control is not asked: it judges only a process whose parent is outside
 * the PID namespace (an exec session's first), and such a process always asks (the library
 * checks its parent is not 0). Findings that only alert do not matter: the sidecar still
 * gets the report and records them. Undefined: it asks.
 */
export function standingAllow(controls: Controls | undefined, p: ProcessInfo, earliestContainerStartMs: number | undefined): "any" | CoveredRuns | undefined {
  if (p.exe === undefined || p.exe.memfd || p.exe.deleted || p.exeFile === undefined || p.exe.loader) return undefined;
  const name = p.exe.path.slice(p.exe.path.lastIndexOf("/") + 1);
  const comm = name.slice(0, 15);
  const inline = inlineCodeOption(name);
  const runs: "any" | CoveredRuns = isShell(name) ? "command" : inline !== undefined ? { inline } : "any";
  if (runs === "any" && (givesCommandLoop(name) || givesCommandLoop(comm) || runsNamedFiles(name, p.exe.loader))) return undefined;
  if (controls === undefined) return runs;
  if (controls.drift?.block === true && earliestContainerStartMs === undefined) return undefined;
  // The least favourable run a table entry speaks for: a child in the pod, with no argv.
  const { script: _script, ...rest } = p;
  const anyRun: ProcessInfo = { ...rest, comm, args: [], origin: "child" };
  const findings = [
    ...checkExecutables(controls, anyRun),
    ...checkFilelessExec(controls, anyRun),
    ...(earliestContainerStartMs === undefined ? [] : checkDrift(controls, anyRun, earliestContainerStartMs)),
  ];
  return findings.some((f) => f.block) ? undefined : runs;
}
