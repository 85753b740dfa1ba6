/**
 * Every attribute key a record may carry, spelled once, as Tetragon keeps its event fields in
 * one schema: a record builder, the stdout formatter and the loss ledger name keys through
 * `Attr`, and `Attributes` admits no other key. OTel semantic conventions where one exists;
 * our own keys under `microenforcer.*` (DESIGN.md, "Contracts"). Renaming an attribute is a
 * change here (and in the README's tables and the tests that assert it). Resource keys
 * (`service.*`, `k8s.pod.*`) are the emitter's: emit/resource.ts, sidecar-contract.ts.
 */

export const Attr = {
  // The process (OTel process semconv), as seen in the pod's PID namespace.
  processPid: "process.pid",
  processParentPid: "process.parent_pid",
  processExecutableName: "process.executable.name",
  processExecutablePath: "process.executable.path",
  processCommandLine: "process.command_line",
  processCommandArgs: "process.command_args",
  processUserId: "process.user.id",
  processRealUserId: "process.real_user.id",
  processCreationTime: "process.creation.time",
  processExitTime: "process.exit.time",
  processExitCode: "process.exit.code",
  processCommand: "process.command",
  processArgsCount: "process.args_count",
  processSessionLeaderPid: "process.session_leader.pid",
  processGroupLeaderPid: "process.group_leader.pid",
  processInteractive: "process.interactive",
  processExitSignal: "microenforcer.process.exit_signal",
  processAncestors: "microenforcer.process.ancestors",
  processComm: "microenforcer.process.comm",
  processExeDeleted: "microenforcer.process.exe_deleted",
  processExeMemfd: "microenforcer.process.exe_memfd",
  processExeLoader: "microenforcer.process.exe_loader",
  processForkOnly: "microenforcer.process.fork_only",
  processExecUnseen: "microenforcer.process.exec_unseen",
  /** The working directory at first sight. */
  processWorkingDirectory: "process.working_directory",
  /** The executable's identity and times, through the process's own exe link at first sight. */
  processExecutableDevice: "microenforcer.process.executable.device",
  processExecutableInode: "microenforcer.process.executable.inode",
  processExecutableChanged: "microenforcer.process.executable.changed",
  processExecutableModified: "microenforcer.process.executable.modified",
  processExecutableSize: "microenforcer.process.executable.size",
  processExecutableLinks: "microenforcer.process.executable.links",
  /** The script an interpreter runs (its argv names it), and its identity, at first sight. */
  processScriptPath: "microenforcer.process.script.path",
  processScriptDevice: "microenforcer.process.script.device",
  processScriptInode: "microenforcer.process.script.inode",
  processScriptChanged: "microenforcer.process.script.changed",
  /** Facts of the process that could not be read, as `file:ERRNO` (`exe:EACCES`). */
  processUnread: "microenforcer.process.unread",
  /** Complete mode: `reported`, `unverified` (the reporter was gone before it could be checked) or `absent`. */
  processPreload: "microenforcer.process.preload",
  processPreloadReason: "microenforcer.process.preload.reason",
  processPreloadEvasion: "microenforcer.process.preload.evasion",
  /** Enforce mode: `asked` (the program waited before main for the verdict), `standing` (the allow table let it go on), `unvetted` (it went on by an entry the sidecar never made for it), `unasked` (it went on without either: its library read another mode), `late` (it asked, and the sidecar took its report at the end of the library's wait or after: it may have gone on by the failure choice). */
  processPreloadVerdict: "microenforcer.process.preload.verdict",
  execOrigin: "microenforcer.exec.origin",
  execSessionPid: "microenforcer.exec.session_pid",
  execInPlace: "microenforcer.exec.in_place",
  /** A probe's exec record in `summarize`: the runs of this probe command it stands for (since its previous record, this one included). */
  probeRuns: "microenforcer.probe.runs",
  /** Something in the command line was replaced by [REDACTED]. */
  redacted: "microenforcer.redacted",
  // Its container (OTel k8s and container semconv).
  k8sContainerName: "k8s.container.name",
  containerId: "container.id",
  containerImageName: "container.image.name",
  containerImageTags: "container.image.tags",
  containerImageRepoDigests: "container.image.repo_digests",
  // Sockets (OTel network and server semconv).
  networkTransport: "network.transport",
  networkType: "network.type",
  networkLocalAddress: "network.local.address",
  networkLocalPort: "network.local.port",
  networkPeerAddress: "network.peer.address",
  networkPeerPort: "network.peer.port",
  networkConnectionState: "network.connection.state",
  serverAddress: "server.address",
  serverPort: "server.port",
  clientAddress: "client.address",
  clientPort: "client.port",
  /** The peer's PTR name (spec.dns.reverseLookup): not server.address, which is only what the process resolved. */
  dnsReverseName: "microenforcer.dns.reverse_name",
  networkAttribution: "microenforcer.network.attribution",
  networkInode: "microenforcer.network.inode",
  networkDirection: "microenforcer.network.direction",
  dnsSource: "microenforcer.dns.source",
  dnsListen: "microenforcer.dns.listen",
  dnsUpstream: "microenforcer.dns.upstream",
  dnsNames: "microenforcer.dns.names",
  dnsNameservers: "microenforcer.dns.nameservers",
  // How the sensor found it, and what it says about itself.
  sensorDetection: "microenforcer.sensor.detection",
  sensorTrigger: "microenforcer.sensor.trigger",
  statusCause: "microenforcer.status.cause",
  /** Why the kernel refused a /proc read: uid, gid, capabilities, not-dumpable, other (proc/access.ts). */
  accessDenial: "microenforcer.access.denial",
  accessMissingCapabilities: "microenforcer.access.missing_capabilities",
  gapKind: "microenforcer.gap.kind",
  gapCount: "microenforcer.gap.count",
  gapFirstPid: "microenforcer.gap.first_pid",
  gapLastPid: "microenforcer.gap.last_pid",
  /** Of the gap's PIDs, those gone before their turn while the sensor read a burst of new PIDs. */
  gapLate: "microenforcer.gap.late",
  /** The most new PIDs waiting to be read at once in the gap's window (a burst). */
  gapBacklogPeak: "microenforcer.gap.backlog_peak",
  gapSince: "microenforcer.gap.since",
  gapUntil: "microenforcer.gap.until",
  /** The sidecar was not running (killed, or stopped and restarted): from its last sign of life to the next start. */
  blindSince: "microenforcer.blind.since",
  blindUntil: "microenforcer.blind.until",
  /** PIDs the pod handed out meanwhile (ns_last_pid), each a process or thread nobody watched. */
  blindPidCount: "microenforcer.blind.pid_count",
  /** ns_last_pid written back: how often, from the look before the first to the look that found the last. */
  pidSetBackCount: "microenforcer.pid_set_back.count",
  pidSetBackSince: "microenforcer.pid_set_back.since",
  pidSetBackUntil: "microenforcer.pid_set_back.until",
  /** Heartbeat: this run's start, the interval, and its counters since then. */
  sensorStarted: "microenforcer.sensor.started",
  heartbeatIntervalSeconds: "microenforcer.heartbeat.interval_s",
  heartbeatProcesses: "microenforcer.heartbeat.processes",
  heartbeatConnections: "microenforcer.heartbeat.connections",
  heartbeatGaps: "microenforcer.heartbeat.gaps",
  heartbeatRecordsEmitted: "microenforcer.heartbeat.records_emitted",
  heartbeatRecordsLost: "microenforcer.heartbeat.records_lost",
  // The policy and what it decided.
  policyName: "microenforcer.policy.name",
  policyMode: "microenforcer.policy.mode",
  policyGeneration: "microenforcer.policy.generation",
  /** sha256 of the policy document's text, and the key that signed it ("unsigned" for a plain file). */
  policyDigest: "microenforcer.policy.digest",
  policySigner: "microenforcer.policy.signer",
  control: "microenforcer.control",
  rule: "microenforcer.rule",
  action: "microenforcer.action",
  enforcementLatencyMs: "microenforcer.enforcement.latency_ms",
  // The finding's rule (OTel security-rule semconv): the policy, the control, the entry.
  securityRuleName: "security_rule.name",
  securityRuleCategory: "security_rule.category",
  securityRuleRulesetName: "security_rule.ruleset.name",
  securityRuleUuid: "security_rule.uuid",
  securityRuleVersion: "security_rule.version",
  // Delivery: records lost, the spool, the record's own id.
  lossReason: "microenforcer.loss.reason",
  lossCount: "microenforcer.loss.count",
  lossSince: "microenforcer.loss.since",
  lossUntil: "microenforcer.loss.until",
  lossDetail: "microenforcer.loss.detail",
  spoolDir: "microenforcer.spool.dir",
  // Complete mode's report socket.
  preloadSocket: "microenforcer.preload.socket",
  preloadProblem: "microenforcer.preload.problem",
  preloadDropped: "microenforcer.preload.dropped",
  spoolRecovered: "microenforcer.spool.recovered",
  /** The record's id (ULID); log.record.uid is the semantic convention's, microenforcer.record.id kept for one release. */
  recordId: "microenforcer.record.id",
  logRecordUid: "log.record.uid",
  // The injector's exec records: who asked the apiserver, for which pod (the record's subject,
  // not its resource), and how (webhook/exec-record.ts).
  userName: "user.name",
  k8sUserGroups: "microenforcer.k8s.user.groups",
  k8sPodName: "k8s.pod.name",
  k8sNamespaceName: "k8s.namespace.name",
  k8sSubresource: "microenforcer.k8s.subresource",
  execTty: "microenforcer.exec.tty",
  execStdin: "microenforcer.exec.stdin",
} as const;

/** Our own attribute keys and event names start with this. */
export const OWN_PREFIX = "microenforcer.";

/** `microenforcer.loss.by_event.<event>` (e.g. `...by_event.process.exec`): records lost of one kind. */
export const LOSS_BY_EVENT_PREFIX = "microenforcer.loss.by_event.";
type LossByEventKey = `${typeof LOSS_BY_EVENT_PREFIX}${string}`;

export type AttributeKey = (typeof Attr)[keyof typeof Attr] | LossByEventKey;
/** Scalars, string arrays, and arrays of small maps (OTel log attributes take any value: `microenforcer.process.ancestors`). */
export type AttributeValue = string | number | boolean | string[] | Array<Record<string, string | number>>;
export type Attributes = { [K in AttributeKey]?: AttributeValue };
