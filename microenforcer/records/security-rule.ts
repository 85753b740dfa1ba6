/**
 * The rule behind a finding as the OTel security-rule conventions name it, for the sidecar's
 * violation records and the injector's exec denials alike: the policy is the ruleset, the
 * control the category, the entry that matched the name; its uuid is the same for that entry
 * of that policy on every pod (a UUID v5 of the three), its version the policy's generation
 * when the apiserver gave it one.
 */
import { createHash } from "node:crypto";
import type { RuntimePolicy } from "../../policies/schema.ts";
import { Attr, type Attributes } from "./attributes.ts";

export function ruleAttributes(policy: RuntimePolicy, finding: { control: string; rule: string }): Attributes {
  const a: Attributes = {
    [Attr.securityRuleName]: finding.rule,
    [Attr.securityRuleCategory]: finding.control,
    [Attr.securityRuleRulesetName]: policy.metadata.name,
    [Attr.securityRuleUuid]: uuidV5(`${policy.metadata.name}\u0000${finding.control}\u0000${finding.rule}`),
  };
  if (policy.metadata.generation !== undefined) a[Attr.securityRuleVersion] = String(policy.metadata.generation);
  return a;
}

/** The namespace of our rule uuids (RFC 9562 name-based UUIDs need one; chosen once, never to change). */
const RULE_NAMESPACE = Buffer.from("3f6c2a1e9b4d4c5e8a7f0d1b2c3e4f50", "hex");

function uuidV5(name: string): string {
  const bytes = createHash("sha1").update(RULE_NAMESPACE).update(name, "utf8").digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
