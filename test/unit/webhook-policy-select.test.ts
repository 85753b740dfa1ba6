import assert from "node:assert/strict";
import { validatePolicy } from "../../policies/load.ts";
import { matchesSelector, selectorProblems } from "../../webhook/label-selector.ts";
import { selectPolicy } from "../../webhook/policy-select.ts";

const policy = (name: string, spec: object) => validatePolicy({ apiVersion: "microenforcer.dev/v1alpha1", kind: "RuntimePolicy", metadata: { name }, spec }, name);

describe("webhook/label-selector", () => {
  const labels = { app: "api", tier: "backend" };

  it("matches everything with an empty or absent selector", () => {
    assert.ok(matchesSelector(undefined, labels));
    assert.ok(matchesSelector({}, {}));
  });

  it("needs every matchLabels entry and every expression", () => {
    assert.ok(matchesSelector({ matchLabels: { app: "api" }, matchExpressions: [{ key: "tier", operator: "In", values: ["backend", "db"] }] }, labels));
    assert.ok(!matchesSelector({ matchLabels: { app: "api", tier: "frontend" } }, labels));
  });

  it("follows the Kubernetes operators, NotIn and DoesNotExist holding for absent keys", () => {
    const holds = (operator: "In" | "NotIn" | "Exists" | "DoesNotExist", key: string, values?: string[]) =>
      matchesSelector({ matchExpressions: [{ key, operator, ...(values ? { values } : {}) }] }, labels);
    assert.deepEqual(
      [holds("In", "app", ["api"]), holds("In", "zone", ["a"]), holds("NotIn", "app", ["api"]), holds("NotIn", "zone", ["a"])],
      [true, false, false, true],
    );
    assert.deepEqual([holds("Exists", "app"), holds("Exists", "zone"), holds("DoesNotExist", "app"), holds("DoesNotExist", "zone")], [true, false, false, true]);
  });

  it("treats an invalid selector as matching nothing and says why", () => {
    const invalid = { matchExpressions: [{ key: "app", operator: "In" as const, values: [] }, { key: "x", operator: "Exists" as const, values: ["y"] }] };
    assert.equal(matchesSelector(invalid, labels), false);
    assert.deepEqual(selectorProblems(invalid), ["matchExpressions[0] (app In): needs at least one value", "matchExpressions[1] (x Exists): takes no values"]);
  });
});

describe("webhook/policy-select", () => {
  const everyone = policy("everyone", { priority: 0 });
  const payments = policy("payments", { priority: 100, scope: { namespaceSelector: { matchLabels: { team: "payments" } } } });
  const apiA = policy("api-a", { priority: 50, scope: { podSelector: { matchLabels: { app: "api" } } } });
  const apiB = policy("api-b", { priority: 50, scope: { podSelector: { matchLabels: { app: "api" } } } });
  const all = [everyone, payments, apiB, apiA];
  const subject = (podLabels: Record<string, string>, namespaceLabels: Record<string, string>, requested?: string) => ({ podLabels, namespaceLabels, requested });

  it("picks the highest priority among the policies in scope", () => {
    assert.equal(selectPolicy(all, subject({ app: "api" }, { team: "payments" })).policy.metadata.name, "payments");
    assert.equal(selectPolicy(all, subject({ app: "web" }, { team: "shop" })).policy.metadata.name, "everyone");
  });

  it("breaks priority ties by name, so every replica picks the same", () => {
    assert.equal(selectPolicy(all, subject({ app: "api" }, {})).policy.metadata.name, "api-a");
  });

  it("takes the policy the pod names when the admin left the choice open: in scope, ranked no lower", () => {
    const choice = selectPolicy(all, subject({ app: "api" }, {}, "api-b"));
    assert.deepEqual([choice.policy.metadata.name, choice.how, choice.warnings], ["api-b", "annotation", []]);
  });

  it("never lets a pod name a policy ranked below the one in scope: the weakest-policy attack", () => {
    const choice = selectPolicy(all, subject({ app: "api" }, { team: "payments" }, "everyone"));
    assert.deepEqual([choice.policy.metadata.name, choice.how], ["payments", "scope"]);
    assert.match(choice.warnings[0]!, /'everyone' named by the pod ranks below payments \(priority 0 < 100\) and does not allow named selection; payments applies/);
  });

  it("never lets a pod name a policy whose scope does not select it", () => {
    const choice = selectPolicy(all, subject({ app: "web" }, { team: "shop" }, "payments"));
    assert.deepEqual([choice.policy.metadata.name, choice.how], ["everyone", "scope"]);
    assert.match(choice.warnings[0]!, /'payments' named by the pod does not select it \(its scope\) and does not allow named selection; everyone \(chosen by scope\) applies/);
  });

  it("lets a pod name a policy that allows named selection, in scope or not", () => {
    const lockdown = policy("exec-lockdown", { priority: 0, scope: { podSelector: { matchLabels: { app: "batch" } }, allowNamedSelection: true } });
    const choice = selectPolicy([...all, lockdown], subject({ app: "api" }, { team: "payments" }, "exec-lockdown"));
    assert.deepEqual([choice.policy.metadata.name, choice.how, choice.warnings], ["exec-lockdown", "annotation", []]);
  });

  it("warns and chooses by scope when the named policy does not exist", () => {
    const choice = selectPolicy(all, subject({}, {}, "gone"));
    assert.deepEqual([choice.policy.metadata.name, choice.how], ["everyone", "scope"]);
    assert.match(choice.warnings[0]!, /'gone' named by the pod does not exist; everyone \(chosen by scope\) applies/);
  });

  it("falls back to the built-in default when nothing matches", () => {
    const choice = selectPolicy([payments], subject({}, {}));
    assert.deepEqual([choice.policy.metadata.name, choice.how], ["default-forensics", "default"]);
  });
});
