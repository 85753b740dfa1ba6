/**
 * The RuntimePolicy document: the single source of truth for `watch --policy`,
 * `policy validate` and the CRD's openAPIV3Schema. Unknown keys are errors, so a typo in a
 * security control is caught instead of silently ignored. Defaults live here too.
 */
import { FormatRegistry, Type, type Static } from "@sinclair/typebox";

// Redaction patterns are compiled with these flags (microenforcer/records/redact.ts).
FormatRegistry.Set("regex", (value) => {
  try {
    new RegExp(value, "giu");
    return true;
  } catch {
    return false;
  }
});

const strict = { additionalProperties: false } as const;

/** Where the DNS forwarder listens unless the policy says otherwise: where a resolver asks (port 53). */
export const DEFAULT_FORWARDER_LISTEN = "127.0.0.1:53";
/** Seconds between two heartbeat records unless the policy says otherwise. */
export const DEFAULT_HEARTBEAT_SECONDS = 60;

const LabelSelector = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String({ minLength: 1 }),
            operator: Type.Union([Type.Literal("In"), Type.Literal("NotIn"), Type.Literal("Exists"), Type.Literal("DoesNotExist")]),
            values: Type.Optional(Type.Array(Type.String())),
          },
          strict,
        ),
      ),
    ),
  },
  strict,
);

const Block = Type.Object({ block: Type.Boolean({ default: true }) }, strict);

export const RuntimePolicySpec = Type.Object(
  {
    enforcementMode: Type.Union([Type.Literal("audit"), Type.Literal("enforce")], { default: "audit" }),
    priority: Type.Integer({ default: 0 }),
    scope: Type.Optional(
      Type.Object(
        {
          namespaceSelector: Type.Optional(LabelSelector),
          podSelector: Type.Optional(LabelSelector),
          allowNamedSelection: Type.Optional(
            Type.Boolean({
              description:
                "Pods may name this policy (annotation microenforcer.dev/policy) even when its scope does not select them or a higher-priority policy does. Default: a pod may name it only when the admin's choice for that pod would be a policy of no higher priority.",
            }),
          ),
        },
        strict,
      ),
    ),
    forensics: Type.Object(
      {
        processActivity: Type.Boolean({ default: true }),
        fullCommandArguments: Type.Boolean({ default: true }),
        networkActivity: Type.Boolean({ default: true }),
        /**
         * Complete mode: the preload library reports each exec of a dynamically linked program
         * from inside the process, before main (and waits for the verdict in enforce mode).
         * Takes effect in pods the injector delivered the library to.
         */
        preload: Type.Boolean({
          default: true,
          description: "Complete mode: every exec of a dynamically linked program reported by the preload library before main, and blocked there in enforce mode",
        }),
        /** The kubelet's exec probes (microenforcer.exec.origin: probe): every run, one record per probe command per 10 min with its count, or none. */
        probes: Type.Optional(
          Type.Union([Type.Literal("record"), Type.Literal("summarize"), Type.Literal("off")], {
            description: "Records of the kubelet's exec probes: record every run, summarize (when unset: one exec record per probe command per 10 min, with microenforcer.probe.runs), or off. What a probe starts is recorded as usual",
          }),
        ),
        /** The sign of life a backend alerts on when it stops: microenforcer.sensor.heartbeat with the sensor's counters. */
        heartbeatSeconds: Type.Optional(
          Type.Integer({
            minimum: 1,
            maximum: 3600,
            description: `Seconds between two microenforcer.sensor.heartbeat records (the sensor's counters), ${DEFAULT_HEARTBEAT_SECONDS} when unset; their absence tells a backend the sensor is gone, not the pod quiet`,
          }),
        ),
        /** Secrets are always redacted from command lines by built-in rules; these patterns add to them. */
        redaction: Type.Optional(
          Type.Object(
            {
              patterns: Type.Array(
                Type.String({
                  minLength: 1,
                  format: "regex",
                  description: "JavaScript regular expression, matched case-insensitively against each argument; a named group `secret` marks what to replace, else the whole match",
                }),
                { default: [] },
              ),
            },
            strict,
          ),
        ),
      },
      { ...strict, default: {} },
    ),
    verdict: Type.Object(
      {
        timeoutMs: Type.Integer({ minimum: 1, maximum: 10000, default: 250, description: "How long a program waits before main for the sidecar's verdict (enforce mode, preload on)" }),
        failure: Type.Union([Type.Literal("allow"), Type.Literal("deny")], {
          default: "allow",
          description: "What a program does when no verdict comes in time (sidecar gone, slow or refusing): allow runs it, deny stops it before main",
        }),
      },
      { ...strict, default: {} },
    ),
    dns: Type.Optional(
      Type.Object(
        {
          /**
           * A DNS forwarder in the sidecar that records which name each address was resolved
           * from; the injector points the pod's resolver at it. The pod's DNS then goes
           * through the sidecar (see README). Default: see forwarderEnabled.
           */
          forwarder: Type.Optional(
            Type.Object(
              {
                enabled: Type.Optional(
                  Type.Boolean({ description: "Default: on when the policy records network activity or a blockedOutbound rule matches domains" }),
                ),
                listen: Type.String({ default: DEFAULT_FORWARDER_LISTEN, description: "ADDRESS[:PORT] the forwarder listens on (UDP and TCP)" }),
                upstream: Type.Optional(
                  Type.Array(Type.String({ minLength: 1 }), { description: "ADDRESS[:PORT] of the servers asked; default: the sidecar's resolv.conf nameservers" }),
                ),
              },
              strict,
            ),
          ),
          /** When no forwarder names a peer: reverse (PTR) lookups, cached. */
          reverseLookup: Type.Boolean({ default: false }),
        },
        strict,
      ),
    ),
    controls: Type.Optional(
      Type.Object(
        {
          containerExec: Type.Optional(
            Type.Object({ block: Type.Boolean({ default: true }), allowedCommands: Type.Optional(Type.Array(Type.String())) }, strict),
          ),
          executables: Type.Optional(
            Type.Object(
              {
                blocked: Type.Optional(Type.Array(Type.String())),
                allowed: Type.Optional(Type.Array(Type.String())),
                unidentified: Type.Union([Type.Literal("alert"), Type.Literal("block")], {
                  default: "alert",
                  description:
                    "With an allowed list: a process whose executable the sensor may not read (another UID, capabilities the sidecar lacks, workers that dropped root) is a finding, `unidentified executable`; block kills it in enforce mode",
                }),
              },
              strict,
            ),
          ),
          reverseShell: Type.Optional(Block),
          filelessExec: Type.Optional(Block),
          /** A program that should have loaded the preload library and did not (LD_PRELOAD removed, reports diverted), or whose library went on without asking in enforce mode. */
          preloadEvasion: Type.Optional(Block),
          drift: Type.Optional(Block),
          network: Type.Optional(
            Type.Object(
              {
                blockedOutbound: Type.Optional(
                  Type.Array(
                    Type.Object(
                      {
                        cidr: Type.Optional(Type.String()),
                        port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
                        domain: Type.Optional(Type.String()),
                      },
                      { ...strict, minProperties: 1 },
                    ),
                  ),
                ),
                blockedListenPorts: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }))),
              },
              strict,
            ),
          ),
          portScan: Type.Optional(
            Type.Object(
              {
                detect: Type.Boolean({ default: true }),
                distinctPorts: Type.Integer({ minimum: 2, default: 20 }),
                windowSeconds: Type.Integer({ minimum: 1, default: 10 }),
              },
              strict,
            ),
          ),
        },
        strict,
      ),
    ),
  },
  { ...strict, default: {} },
);

export const RuntimePolicyDocument = Type.Object({
  apiVersion: Type.Literal("microenforcer.dev/v1alpha1"),
  kind: Type.Literal("RuntimePolicy"),
  metadata: Type.Object({
    name: Type.String({ minLength: 1, maxLength: 253, pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" }),
    generation: Type.Optional(Type.Integer()),
  }),
  spec: RuntimePolicySpec,
});

export type RuntimePolicySpec = Static<typeof RuntimePolicySpec>;
export type RuntimePolicy = Static<typeof RuntimePolicyDocument>;

/**
 * Whether the policy wants connections named by the DNS forwarder: `dns.forwarder.enabled`
 * when set, else whenever connections are recorded or a rule matches domains (names out of
 * the box, as the built-in default policy has them).
 */
export function forwarderEnabled(spec: RuntimePolicySpec): boolean {
  return spec.dns?.forwarder?.enabled ?? (spec.forensics.networkActivity || (spec.controls?.network?.blockedOutbound ?? []).some((rule) => rule.domain !== undefined));
}

export type ProbeRecordingMode = NonNullable<RuntimePolicySpec["forensics"]["probes"]>;

/** How the kubelet's exec probes are recorded under this policy. */
export function probeRecording(spec: RuntimePolicySpec): ProbeRecordingMode {
  return spec.forensics.probes ?? "summarize";
}

/** Seconds between two heartbeat records under this policy. */
export function heartbeatSeconds(spec: RuntimePolicySpec): number {
  return spec.forensics.heartbeatSeconds ?? DEFAULT_HEARTBEAT_SECONDS;
}

/** ADDRESS[:PORT] the forwarder listens on under this policy. */
export function forwarderListen(spec: RuntimePolicySpec): string {
  return spec.dns?.forwarder?.listen ?? DEFAULT_FORWARDER_LISTEN;
}
