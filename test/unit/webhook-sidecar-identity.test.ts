import assert from "node:assert/strict";
import { identityData } from "../../webhook/sidecar-identity.ts";

describe("webhook/sidecar-identity", () => {
  it("publishes this injector's image first when it is new", () => {
    assert.deepEqual(identityData(undefined, "me:2"), { images: "me:2" });
    assert.deepEqual(identityData({ images: "me:1", other: "kept" }, "me:2"), { images: "me:2 me:1", other: "kept" });
  });

  it("leaves the data as it is when the image is there, so two versions of replicas do not take turns rewriting it", () => {
    const current = { images: "me:2 me:1" };
    assert.equal(identityData(current, "me:1"), current);
    assert.equal(identityData(current, "me:2"), current);
  });

  it("keeps the four newest images", () => {
    assert.deepEqual(identityData({ images: "a b c d" }, "e"), { images: "e a b c" });
  });
});
