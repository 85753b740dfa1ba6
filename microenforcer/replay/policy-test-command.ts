/**
 * `microenforcer policy test --policy FILE RECORDS...`: what a policy would have found and
 * killed in recorded activity. Exit 0 when nothing would be blocked, 1 when something
 * would (a CI gate for a policy change), 2 when the input cannot be used.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../../policies/load.ts";
import type { RuntimePolicy } from "../../policies/schema.ts";
import { readRecordLine } from "./recorded.ts";
import { PolicyReplay } from "./replay.ts";
import { blockedFindings, formatJson, formatText, type Skipped } from "./replay-report.ts";
import { InputError } from "../../policies/input-error.ts";

const usage = `usage: microenforcer policy test --policy FILE [--format text|json] RECORDS...
  RECORDS: files of \`watch --format json\` stdout (e.g. kubectl logs ... -c microenforcer)
  or of the OpenTelemetry Collector's file exporter (OTLP/JSON); - reads stdin.
  Replayed in the order given: give rotated files oldest first.
  exit 0: nothing would be blocked; 1: something would; 2: unusable input
`;

/** Skipped lines named in the report; the rest are counted. */
const shownSkipped = 5;

export async function runPolicyTest(args: string[]): Promise<number> {
  let values, files;
  try {
    ({ values, positionals: files } = parseArgs({ args, options: { policy: { type: "string" }, format: { type: "string", default: "text" }, help: { type: "boolean" } }, allowPositionals: true, strict: true }));
  } catch (err) {
    process.stderr.write(`microenforcer policy test: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (values.policy === undefined || files.length === 0 || (values.format !== "text" && values.format !== "json")) {
    process.stderr.write(usage);
    return 2;
  }
  let policy: RuntimePolicy;
  try {
    policy = loadPolicyFile(values.policy)[0]!;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    process.stderr.write(`microenforcer policy test: invalid policy:\n${err.problems.map((p) => `  ${p}`).join("\n")}\n`);
    return 2;
  }

  const replay = new PolicyReplay(policy);
  const skipped: Skipped = { count: 0, first: [] };
  for (const file of files) {
    try {
      await replayFile(file === "-" ? process.stdin : createReadStream(file), file === "-" ? "stdin" : file, replay, skipped);
    } catch (err) {
      process.stderr.write(`microenforcer policy test: cannot read ${file}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const result = replay.result();
  const report = { result, skipped };
  process.stdout.write(values.format === "json" ? formatJson(report) : formatText(report));
  if (result.records.read === 0) {
    process.stderr.write(`microenforcer policy test: no records in ${files.join(", ")}\n`);
    return 2;
  }
  return blockedFindings(result) > 0 ? 1 : 0;
}

async function replayFile(input: Readable, name: string, replay: PolicyReplay, skipped: Skipped): Promise<void> {
  let n = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    n++;
    if (line.trim() === "") continue;
    const reading = readRecordLine(line);
    if ("skipped" in reading) {
      if (skipped.count++ < shownSkipped) skipped.first.push({ where: `${name}:${n}`, why: reading.skipped });
    }
    else for (const record of reading.records) replay.add(record);
  }
}
