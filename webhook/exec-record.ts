/**
 * The injector's record of a session seen at admission: `microenforcer.k8s.exec`, naming the
 * Kubernetes user, the pod, container and command, and the answer. It shares pod, container
 * and command with the sidecar's own exec records, so a backend can join the two. The
 * command line is redacted as the pod's policy redacts it (the default patterns without one).
 */
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { parseResourceAttributes } from "../microenforcer/emit/resource.ts";
import { version } from "../microenforcer/version.ts";
import { Attr, type Attributes } from "../microenforcer/records/attributes.ts";
import { EventNames, type SensorRecord } from "../microenforcer/records/record.ts";
import { createRedactor } from "../microenforcer/records/redact.ts";
import { ruleAttributes } from "../microenforcer/records/security-rule.ts";
import type { RuntimePolicy } from "../policies/schema.ts";
import type { ExecDecision, ExecSession } from "./exec-decide.ts";

const VERB: Readonly<Record<ExecSession["kind"], string>> = { exec: "kubectl exec", attach: "kubectl attach", ephemeralcontainers: "ephemeral container (kubectl debug)" };

/** `unchecked`: the pod's policy could not be read, so nothing was decided (the failurePolicy did). */
export function execRecord(session: ExecSession, decision: ExecDecision, policy: RuntimePolicy | undefined, now: number = Date.now(), unchecked = false): SensorRecord {
  const attributes: Attributes = {
    [Attr.userName]: session.user.name,
    [Attr.k8sUserGroups]: session.user.groups,
    [Attr.k8sNamespaceName]: session.namespace,
    [Attr.k8sPodName]: session.pod,
    [Attr.k8sSubresource]: session.kind,
    [Attr.execTty]: session.tty,
    [Attr.execStdin]: session.stdin,
    [Attr.action]: unchecked ? "unchecked" : decision.allowed ? "allowed" : "denied",
  };
  if (session.container !== undefined) attributes[Attr.k8sContainerName] = session.container;
  let commandText = "";
  if (session.command !== undefined && session.command.length > 0) {
    const { args, redacted } = createRedactor(policy?.spec.forensics.redaction?.patterns).redact(session.command);
    attributes[Attr.processCommandArgs] = args;
    if (redacted) attributes[Attr.redacted] = true;
    commandText = `: ${args.join(" ")}`;
  }
  if (policy !== undefined) {
    attributes[Attr.policyName] = policy.metadata.name;
    attributes[Attr.policyMode] = policy.spec.enforcementMode;
    // A denial is the containerExec control's finding, made before the process could start.
    if (!decision.allowed) Object.assign(attributes, ruleAttributes(policy, { control: "containerExec", rule: decision.rule }));
  }
  const container = session.container === undefined ? "" : ` container ${session.container}`;
  const outcome = unchecked && decision.allowed ? `unchecked: ${decision.why}` : decision.allowed ? `allowed (${decision.why})` : `denied: ${decision.message}`;
  return {
    eventName: EventNames.k8sExec,
    severity: unchecked ? "WARN" : decision.allowed ? "INFO" : "ERROR",
    body: `${VERB[session.kind]} by ${session.user.name || "(unknown user)"} into ${session.namespace}/${session.pod}${container}${commandText} — ${outcome}`,
    attributes,
    timestamp: now,
  };
}

/** The resource of the injector's own records: it, not the pod they are about (that is in the attributes). */
export function injectorResource(env: NodeJS.ProcessEnv): Resource {
  return resourceFromAttributes({ "service.name": "microenforcer-injector", "service.version": version, ...parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES) });
}
