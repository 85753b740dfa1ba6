/** `microenforcer inject`: print the injected object, like `istioctl kube-inject`. */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { clusterDnsOf } from "./config.ts";
import type { InjectContext } from "./inject.ts";
import { injectYaml, type InjectMode } from "./inject-yaml.ts";
import { injectorConfigFrom, injectorOptions, parseLabels, policiesFrom, UsageError } from "./options.ts";
import { InputError } from "../policies/input-error.ts";

export const injectUsage = `  inject -f FILE|- [--policy FILE] [--namespace-labels k=v,...] [--image IMAGE]
         [--kube-version 1.30] [--allow-ptrace] [--runtime-default-capabilities CHOWN,KILL,...]
         [--sidecar-memory 160Mi] [--sidecar-cpu 500m] [--sidecar-memory-request 64Mi] [--sidecar-cpu-request 20m]
         [--pod-labels app,team,...] [--cluster-name NAME] [--cloud-provider aws] [--cloud-platform aws_eks]
         [--cloud-region REGION] [--cloud-account-id ID]
         [--cluster-dns IP[,IP]] [--cluster-domain cluster.local] [--remove]
        print the object with the MicroEnforcer injected into every pod (or removed)
`;

export interface InjectRequest {
  file: string;
  mode: InjectMode;
  context: InjectContext;
}

/** Arguments → what to inject with; throws UsageError, or InputError for a bad --policy file. */
export function parseInjectArgs(args: string[], env: NodeJS.ProcessEnv): InjectRequest {
  const { values } = parseArgs({
    args,
    options: { ...injectorOptions, filename: { type: "string", short: "f" }, "namespace-labels": { type: "string" }, remove: { type: "boolean" } },
    strict: true,
  });
  if (values.filename === undefined) throw new UsageError("-f FILE is required (- reads standard input)");
  const labels = values["namespace-labels"];
  const config = injectorConfigFrom(values, env);
  return {
    file: values.filename,
    mode: values.remove === true ? "remove" : "inject",
    context: {
      config,
      policies: policiesFrom(values.policy),
      namespaceLabels: labels === undefined ? undefined : parseLabels(labels),
      clusterDns: clusterDnsOf(config, undefined),
    },
  };
}

function readInput(file: string): string {
  try {
    return readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (err) {
    throw new InputError([`${file}: cannot read: ${(err as Error).message}`]);
  }
}

export async function runInject(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`usage:\n${injectUsage}`);
    return 0;
  }
  try {
    const request = parseInjectArgs(args, process.env);
    const result = injectYaml(readInput(request.file), request.file, request.context, request.mode);
    for (const message of result.messages) process.stderr.write(`microenforcer inject: ${message}\n`);
    process.stdout.write(result.output);
    return 0;
  } catch (err) {
    if (err instanceof InputError) {
      process.stderr.write(`microenforcer inject: cannot inject:\n${err.problems.map((p) => `  ${p}`).join("\n")}\n`);
      return 1;
    }
    // parseArgs throws TypeErrors with a code for unknown or malformed options.
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS") === true) {
      process.stderr.write(`microenforcer inject: ${(err as Error).message}\nusage:\n${injectUsage}`);
      return 2;
    }
    throw err;
  }
}
