#!/usr/bin/env node
/** `microenforcer <command>`: one binary for the sidecar, the webhook and the offline tools. */

type Run = (args: string[]) => Promise<number>;

/**
 * Each command is loaded only when it runs: the sidecar must not pay in memory for the
 * webhook's HTTP server and Kubernetes client, nor the webhook for the sensor.
 */
const commands: Record<string, { synopsis: string; load: () => Promise<Run> }> = {
  watch: {
    synopsis: `watch [--policy FILE] [--exporter stdout|otlp|both] [--format json|pretty] [--spool-dir DIR] [--exec-socket PATH]
        run the MicroEnforcer over the PID namespace it is in (the sidecar's command)`,
    load: async () => (await import("../microenforcer/watch-command.ts")).runWatch,
  },
  preload: {
    synopsis: `preload install --dir DIR [--policy FILE]
        put the preload library (complete mode) into DIR, the injector's init container`,
    load: async () => (await import("../microenforcer/preload-command.ts")).runPreload,
  },
  policy: {
    synopsis: `policy validate FILE...
        check RuntimePolicy documents; exit 1 with one line per error
  policy test --policy FILE [--format text|json] RECORDS...
        what the policy would have found and killed in recorded records; exit 1 if anything would be blocked`,
    load: async () => async (args) =>
      args[0] === "test" ? (await import("../microenforcer/replay/policy-test-command.ts")).runPolicyTest(args.slice(1)) : (await import("../policies/validate-command.ts")).runPolicy(args),
  },
  inject: {
    synopsis: `inject -f FILE|- [--policy FILE] [--namespace-labels k=v,...] [options]
        print the object with the MicroEnforcer injected into every pod (inject --help)`,
    load: async () => (await import("../webhook/inject-command.ts")).runInject,
  },
  webhook: {
    synopsis: `webhook [--port 8443] [--cert-dir DIR | --self-signed] [options]
        the injecting admission webhook (webhook --help)`,
    load: async () => (await import("../webhook/webhook-command.ts")).runWebhook,
  },
};

const usage = `usage: microenforcer <command> [options]\n\ncommands:\n${Object.values(commands)
  .map((c) => `  ${c.synopsis}\n`)
  .join("")}`;

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
  return (await command.load())(rest);
}

process.exitCode = await main(process.argv.slice(2));
