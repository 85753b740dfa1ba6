/** `microenforcer policy validate FILE...`: exit 0, or 1 with one line per error. */
import { loadPolicyFile } from "./load.ts";
import { InputError } from "./input-error.ts";

const usage = "usage: microenforcer policy validate FILE...\n       microenforcer policy test --policy FILE RECORDS...   (policy test --help)\n";

export async function runPolicy(args: string[]): Promise<number> {
  const [sub, ...files] = args;
  if (sub !== "validate" || files.length === 0 || files.some((f) => f.startsWith("-"))) {
    process.stderr.write(usage);
    return 2;
  }
  let failed = false;
  for (const file of files) {
    try {
      const policies = loadPolicyFile(file);
      process.stdout.write(`${file}: ${policies.map((p) => `${p.metadata.name} (${p.spec.enforcementMode})`).join(", ")} valid\n`);
    } catch (err) {
      if (!(err instanceof InputError)) throw err;
      failed = true;
      process.stderr.write(`${err.problems.join("\n")}\n`);
    }
  }
  return failed ? 1 : 0;
}
