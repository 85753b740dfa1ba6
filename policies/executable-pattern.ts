/**
 * What an executable entry of a RuntimePolicy (executables.blocked/allowed,
 * containerExec.allowedCommands) matches: the sidecar checks running processes with it, the
 * injector checks kubectl exec commands before they start.
 */
import picomatch from "picomatch";

const globCache = new Map<string, picomatch.Matcher>();

/** Glob over a path (`**` crosses directories); a pattern without `/` matches the base name too. */
export function matchesExecutable(pattern: string, path: string | undefined, name: string): boolean {
  let matcher = globCache.get(pattern);
  if (matcher === undefined) {
    matcher = picomatch(pattern, { dot: true });
    globCache.set(pattern, matcher);
  }
  if (path !== undefined && matcher(path)) return true;
  return !pattern.includes("/") && matcher(name);
}

/** The containerExec rule a finding names, on the sidecar's violation and the injector's exec denial alike. */
export function containerExecRule(allowedCommands: readonly string[]): string {
  return allowedCommands.length === 0 ? "no exec sessions allowed" : `allowedCommands: ${allowedCommands.join(", ")}`;
}
