/** What `policy test` prints: the replay's result for a person (text) or a program (JSON). */
import type { Action } from "../policy/engine.ts";
import { isBlocking, type ReplayResult, type RuleOutcome } from "./replay.ts";

export interface SkippedLine {
  /** file:line */
  where: string;
  why: string;
}

/** Lines that held no record: how many, and the first few to show. */
export interface Skipped {
  count: number;
  first: SkippedLine[];
}

export interface Report {
  result: ReplayResult;
  skipped: Skipped;
}

/** Findings the policy would act on (kill, or block with nothing left to kill). */
export function blockedFindings(result: ReplayResult): number {
  return result.rules.reduce((n, r) => n + (Object.entries(r.actions) as Array<[Action, number]>).reduce((m, [action, count]) => m + (isBlocking(action) ? count : 0), 0), 0);
}

const actionWords: Record<Action, string> = {
  alert: "alert only",
  killed: "would be killed",
  blocked: "would be stopped before main (complete mode)",
  gone: "unattributed, blocked with nothing left to kill",
  denied: "PID 1, never killed",
};

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
const iso = (ms: number | undefined): string => (ms === undefined ? "?" : new Date(ms).toISOString());

function ruleLines(r: RuleOutcome): string[] {
  const actions = (Object.entries(r.actions) as Array<[Action, number]>).map(([action, n]) => `${n} ${actionWords[action]}`).join(", ");
  const lines = [`  ${r.control}  ${r.rule}  ${plural(r.findings, "finding")}: ${actions}`];
  for (const e of r.examples) {
    lines.push(`      ${iso(e.observedMs)} ${e.source}  ${e.text}`);
    if (e.command !== undefined) lines.push(`          ${e.command}`);
  }
  return lines;
}

/** Values come from records, which pod owners influence: keep control characters off the terminal. */
const printable = (text: string): string => text.replace(/\p{Cc}/gu, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, "0")}`);

export function formatText({ result, skipped }: Report): string {
  const { records: c, policy } = result;
  const lines = [
    `policy ${policy.name} (${policy.mode} mode) replayed on ${plural(c.read, "record")} from ${plural(c.sources.length, "source")} (${c.sources.join(", ")}), ${iso(c.firstMs)} to ${iso(c.lastMs)}`,
    `  ${c.exec} process exec, ${c.exit} exit, ${c.connection} connection, ${c.listen} listen records${c.duplicates > 0 ? `; ${plural(c.duplicates, "duplicate")} replayed once` : ""}`,
  ];
  const blocking = result.rules.filter((r) => Object.keys(r.actions).some((a) => isBlocking(a as Action)));
  const alerting = result.rules.filter((r) => !blocking.includes(r));
  if (blocking.length > 0) lines.push("", "would block:", ...blocking.flatMap(ruleLines));
  if (alerting.length > 0) lines.push("", policy.mode === "audit" ? "would alert (audit mode blocks nothing):" : "would alert (block: false):", ...alerting.flatMap(ruleLines));
  if (result.rules.length === 0) lines.push("", "no findings");
  if (result.notReplayed.length > 0) {
    lines.push("", "not replayed:");
    for (const n of result.notReplayed) {
      const held = n.recordedFindings > 0 ? ` (the records hold ${plural(n.recordedFindings, "finding")} of it by the policy then running)` : "";
      lines.push(`  ${n.control}: ${n.why}${held}`);
    }
  }
  if (result.notes.length > 0) lines.push("", "notes:", ...result.notes.map((n) => `  ${n}`));
  if (skipped.count > 0) {
    lines.push("", `skipped ${plural(skipped.count, "line")} that hold no record:`, ...skipped.first.map((s) => `  ${s.where}: ${s.why}`));
    if (skipped.count > skipped.first.length) lines.push(`  and ${skipped.count - skipped.first.length} more`);
  }
  const blocked = blockedFindings(result);
  lines.push(
    "",
    blocked > 0
      ? `result: ${plural(blocked, "finding")} would be blocked (${plural(result.processesKilled, "process", "processes")} killed)`
      : `result: nothing would be blocked${result.rules.length > 0 ? ` (${plural(result.rules.reduce((n, r) => n + r.findings, 0), "alert")})` : ""}`,
  );
  return `${lines.map(printable).join("\n")}\n`;
}

export function formatJson({ result, skipped }: Report): string {
  return `${JSON.stringify({ ...result, blockedFindings: blockedFindings(result), skipped })}\n`;
}
