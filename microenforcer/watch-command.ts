/** `microenforcer watch`: argument parsing and lifecycle around startWatch. */
import { parseArgs } from "node:util";
import { defaultPolicy, readPolicyText } from "../policies/load.ts";
import { watchPolicyFile } from "../policies/policy-file-watcher.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import { openDocument, verifierFromEnv, type DocumentSource } from "../policies/signed-document.ts";
import { createEmitter } from "./emit/emitter.ts";
import { positiveInteger } from "./emit/otlp-config.ts";
import { PolicyHolder } from "./policy/policy-holder.ts";
import { DEFAULT_SPOOL_MAX_BYTES } from "./spool/spool.ts";
import { policyRejectedRecord, startedEndpointRecord, workloadUnreadableRecord } from "./records/sensor-records.ts";
import { buildResource } from "./emit/resource.ts";
import {
  defaultExporter,
  EXEC_SOCKET_ENV,
  EXPORTERS,
  parseWorkload,
  POLICY_BINDING_ENV,
  POLICY_KEY_ENV,
  SPOOL_DIR_ENV,
  SPOOL_MAX_BYTES_ENV,
  STARTED_PORT_ENV,
  WORKLOAD_ENV,
  type Workload,
} from "./sidecar-contract.ts";
import { serveStarted } from "./started-endpoint.ts";
import { version } from "./version.ts";
import { startWatch } from "./watch.ts";
import { InputError } from "../policies/input-error.ts";

const formats = ["json", "pretty"] as const;

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}, not '${value}'`);
}

class UsageError extends Error {}

export async function runWatch(args: string[]): Promise<number> {
  let options;
  try {
    const { values } = parseArgs({
      args,
      options: {
        policy: { type: "string" },
        exporter: { type: "string" },
        format: { type: "string" },
        "spool-dir": { type: "string" },
        "exec-socket": { type: "string" },
      },
      strict: true,
    });
    options = {
      policyFile: values.policy,
      exporter: oneOf("exporter", values.exporter ?? defaultExporter(process.env), EXPORTERS),
      // People at a terminal get the readable form; log routers get one JSON object per line.
      format: oneOf("format", values.format ?? (process.stdout.isTTY ? "pretty" : "json"), formats),
      // The injector mounts an emptyDir here; OTLP records wait in it while the backend is away.
      spoolDir: values["spool-dir"] || process.env[SPOOL_DIR_ENV] || undefined,
      // Complete mode: where the preload library in the app containers reports each exec.
      execSocket: values["exec-socket"] || process.env[EXEC_SOCKET_ENV] || undefined,
    };
  } catch (err) {
    process.stderr.write(`microenforcer watch: ${(err as Error).message}\n`);
    return 2;
  }

  let policy: RuntimePolicy;
  let source: DocumentSource | undefined;
  let policyText = "";
  let open: ((text: string) => { policy: RuntimePolicy; source: DocumentSource }) | undefined;
  try {
    if (options.policyFile === undefined) policy = defaultPolicy();
    else {
      // Set by the injector: then only documents it signed for this pod are accepted.
      const verifier = verifierFromEnv(process.env, POLICY_KEY_ENV, POLICY_BINDING_ENV);
      const file = options.policyFile;
      open = (text) => openDocument(text, file, verifier);
      policyText = readPolicyText(file);
      ({ policy, source } = open(policyText));
    }
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    process.stderr.write(`microenforcer watch: invalid policy:\n${err.problems.map((p) => `  ${p}`).join("\n")}\n`);
    return 1;
  }

  // Written by the injector only; unreadable, it costs attributes, never the sensor.
  let workload: Workload = { resource: {}, containerImages: {} };
  let workloadProblem: string | undefined;
  try {
    workload = parseWorkload(process.env[WORKLOAD_ENV]);
  } catch (err) {
    workloadProblem = (err as Error).message;
  }

  let emitter;
  let startedPort: number | undefined;
  try {
    // Set by the injector on a native sidecar, whose startupProbe asks there.
    startedPort = process.env[STARTED_PORT_ENV] ? positiveInteger(process.env, STARTED_PORT_ENV, 0) : undefined;
    emitter = createEmitter({
      exporter: options.exporter,
      format: options.format,
      resource: buildResource(process.env, version, workload.resource),
      spool: options.spoolDir === undefined ? undefined : { dir: options.spoolDir, maxBytes: positiveInteger(process.env, SPOOL_MAX_BYTES_ENV, DEFAULT_SPOOL_MAX_BYTES) },
    });
  } catch (err) {
    process.stderr.write(`microenforcer watch: ${(err as Error).message}\n`);
    return 2;
  }

  if (workloadProblem !== undefined) emitter.emit(workloadUnreadableRecord(workloadProblem));
  const inForce = new PolicyHolder(policy, source);
  const watch = startWatch({
    policy: inForce,
    sink: emitter,
    containerImages: workload.containerImages,
    probes: workload.probes ?? {},
    ...(options.execSocket !== undefined && { execSocket: options.execSocket }),
    // The emptyDir outlives the sidecar's container: the next run learns there whether this one was killed.
    ...(options.spoolDir !== undefined && { stateDir: options.spoolDir }),
  });
  const policyWatcher =
    options.policyFile === undefined || open === undefined
      ? undefined
      : watchPolicyFile(options.policyFile, policyText, open, {
          onPolicy: (next, nextSource) => inForce.set(next, nextSource),
          onInvalid: (problems) => emitter.emit(policyRejectedRecord(inForce.current, problems, inForce.source)),
        });
  const started = startedPort === undefined ? undefined : serveStarted(startedPort, watch.watching, (error) => emitter.emit(startedEndpointRecord(startedPort, error)));
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  policyWatcher?.close();
  await started?.close();
  await watch.stop();
  await emitter.shutdown();
  process.stderr.write(`microenforcer watch: stopped on ${signal}\n`);
  return 0;
}
