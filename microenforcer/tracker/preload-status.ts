/**
 * Whether the preload library reported an exec, and when it did not, why — the two sensors
 * checking each other. Pure: the facts come from proc/preload-facts.ts.
 */
import type { PreloadFacts } from "../proc/preload-facts.ts";

export type AbsenceReason =
  /** No dynamic loader runs (static or static-pie, by its ELF headers): nothing loads LD_PRELOAD. */
  | "static"
  /** A program for another architecture or word size (a 32-bit x86 program): its loader cannot load the library. */
  | "other-architecture"
  /** setuid/setgid program or changed UIDs: the loader ignores LD_PRELOAD (secure-execution mode). */
  | "secure-execution"
  /** The environment the program started with does not name the library (`env -u LD_PRELOAD`, `env -i`). */
  | "environment-without-preload"
  /** It names the library but not the sidecar's socket: reports went elsewhere, or nowhere. */
  | "socket-changed"
  /** Everything said a report would come, and none did. */
  | "not-reported"
  /** Gone (or unreadable) before the sensor could tell, and no report came. */
  | "unknown";

/**
 * Enforce mode: the program waited before main for the verdict (`asked`), or the allow table
 * let it go on (`standing`, capture/allow-table.ts) — `unvetted` when the sidecar's table holds
 * no such entry for it (capture/allow-table.ts AllowTable.holds): the file was written by
 * someone else, a policy change emptied it meanwhile, or the entry does not cover this run;
 * `unasked` when it went on without either: its library read another mode than the sidecar's
 * (the `mode` file rewritten, or a socket path the process chose, beside a mode of its own);
 * `late` when it asked, but the sidecar took its report at the end of the library's wait or
 * after (a busy or stopped sidecar): it may have gone on by the policy's failure choice.
 */
export type PreloadVerdict = "asked" | "standing" | "unvetted" | "unasked" | "late";

/**
 * The verdict a report shows; undefined in audit mode. `tableHolds`: the sidecar's allow table
 * has an entry that lets the standing report's run go on; `enforcing`: the sidecar's mode has said enforce
 * long enough that the library read it before this report; `pastWait`: the library's wait for
 * the verdict ended, or was about to, when the sidecar took the report.
 */
export function preloadVerdict(report: { wait: boolean; standing: boolean }, tableHolds: boolean, enforcing: boolean, pastWait = false): PreloadVerdict | undefined {
  if (report.wait) return pastWait ? "late" : "asked";
  if (report.standing) return tableHolds ? "standing" : "unvetted";
  return enforcing ? "unasked" : undefined;
}

export type PreloadStatus =
  /** Reported, and the reporter was checked against /proc while it ran. */
  | { status: "reported"; verdict?: PreloadVerdict }
  /** Reported by a process already gone, or running another program, when the sidecar looked: plausible, not proven (its findings only alert). */
  | { status: "unverified"; verdict?: PreloadVerdict }
  /** evasion: the program was expected to load the library and did not (LD_PRELOAD removed, reports diverted). */
  | { status: "absent"; reason: AbsenceReason; evasion: boolean };

/** What the injector put in every app container's environment, and the library's architecture. */
export interface PreloadSetup {
  library: string;
  socket: string;
  /** ELF e_machine of the library (64-bit). */
  machine: number;
}

const evasions: ReadonlySet<AbsenceReason> = new Set(["environment-without-preload", "socket-changed", "not-reported"]);

export function absent(reason: AbsenceReason): PreloadStatus {
  return { status: "absent", reason, evasion: evasions.has(reason) };
}

/**
 * Why no report will come, when /proc already tells; undefined when one is due and worth
 * waiting for. `identity`: the process's UIDs as the poller saw them.
 */
export function absenceReason(facts: PreloadFacts, identity: { uid: number; euid: number }, setup: PreloadSetup): AbsenceReason | undefined {
  const linking = facts.linking;
  // A loader run as a program (ld.so under any name) shows no PT_INTERP, yet loads LD_PRELOAD like any loader.
  if (linking?.kind === "static") return "static";
  if ((linking?.kind === "dynamic" || linking?.kind === "loader") && (linking.machine !== setup.machine || !linking.wide)) return "other-architecture";
  if (facts.setid === true || identity.uid !== identity.euid) return "secure-execution";
  if (facts.environ === undefined) return undefined;
  // Both loaders split LD_PRELOAD on colons and white space.
  if (!(facts.environ.ldPreload ?? "").split(/[:\s]+/).includes(setup.library)) return "environment-without-preload";
  if (facts.environ.socket !== setup.socket) return "socket-changed";
  return undefined;
}
