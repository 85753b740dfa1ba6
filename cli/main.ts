#!/usr/bin/env node
/** `microenforcer <command>`: one binary for the sidecar, the webhook and the offline tools. */
import { runWatch } from "../microenforcer/watch-command.ts";
import { runPolicy } from "../policies/validate-command.ts";

const usage = `usage: microenforcer <command> [options]

commands:
  watch [--policy FILE] [--exporter stdout|otlp|both] [--format json|pretty]
        run the MicroEnforcer over the PID namespace it is in (the sidecar's command)
  policy validate FILE...
        check RuntimePolicy documents; exit 1 with one line per error
`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  watch: runWatch,
  policy: runPolicy,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`microenforcer: unknown command '${name}'\n${usage}`);
    return 2;
  }
  return command(rest);
}

process.exitCode = await main(process.argv.slice(2));
