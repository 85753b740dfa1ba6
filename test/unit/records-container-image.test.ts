import assert from "node:assert/strict";
import { imageAttributes } from "../../microenforcer/records/container-image.ts";

describe("records/container-image: a container's image reference as OTel attributes", () => {
  const digest = `sha256:${"0f".repeat(32)}`;
  const cases: Array<[string, Record<string, unknown>]> = [
    ["nginx", { "container.image.name": "nginx" }],
    ["nginx:1.27", { "container.image.name": "nginx", "container.image.tags": ["1.27"] }],
    ["registry.example:5000/team/app", { "container.image.name": "registry.example:5000/team/app" }],
    ["registry.example:5000/team/app:1.4", { "container.image.name": "registry.example:5000/team/app", "container.image.tags": ["1.4"] }],
    [
      `registry.example:5000/team/app:1.4@${digest}`,
      { "container.image.name": "registry.example:5000/team/app", "container.image.tags": ["1.4"], "container.image.repo_digests": [`registry.example:5000/team/app@${digest}`] },
    ],
    [`app@${digest}`, { "container.image.name": "app", "container.image.repo_digests": [`app@${digest}`] }],
  ];
  for (const [reference, attributes] of cases) {
    it(reference, () => assert.deepEqual(imageAttributes(reference), attributes));
  }
});
