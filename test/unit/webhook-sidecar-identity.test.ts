import assert from "node:assert/strict";
import { identityData } from "../../webhook/sidecar-identity.ts";

const facts = (image: string, policyKey?: string) => ({ image, policyKey });

describe("webhook/sidecar-identity", () => {
  it("publishes this injector's image and signing key first when they are new", () => {
    assert.deepEqual(identityData(undefined, facts("me:2", "KEY2")), { images: "me:2", policyKeys: "KEY2" });
    assert.deepEqual(identityData({ images: "me:1", policyKeys: "KEY1", other: "kept" }, facts("me:2", "KEY1")), { images: "me:2 me:1", policyKeys: "KEY1", other: "kept" });
    assert.deepEqual(identityData(undefined, facts("me:2")), { images: "me:2" }, "an injector without a key publishes none");
  });

  it("leaves the data as it is when they are there, so two versions of replicas do not take turns rewriting it", () => {
    const current = { images: "me:2 me:1", policyKeys: "KEY" };
    assert.equal(identityData(current, facts("me:1", "KEY")), current);
    assert.equal(identityData(current, facts("me:2", "KEY")), current);
  });

  it("keeps the four newest", () => {
    assert.deepEqual(identityData({ images: "a b c d" }, facts("e")), { images: "e a b c" });
  });
});
