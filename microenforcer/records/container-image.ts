/**
 * An image reference as a container spec names it (`registry:5000/team/app:1.4@sha256:…`)
 * → the OTel container semantic conventions: `container.image.name` (the repository),
 * `container.image.tags`, and `container.image.repo_digests` (`name@digest`) when pinned.
 */
import { Attr, type Attributes } from "./attributes.ts";

export function imageAttributes(reference: string): Attributes {
  const at = reference.indexOf("@");
  const withoutDigest = at === -1 ? reference : reference.slice(0, at);
  const digest = at === -1 ? undefined : reference.slice(at + 1);
  // A tag follows the last ':' after the last '/' (a ':' before it is a registry's port).
  const colon = withoutDigest.lastIndexOf(":");
  const tagged = colon > withoutDigest.lastIndexOf("/");
  const name = tagged ? withoutDigest.slice(0, colon) : withoutDigest;
  const a: Attributes = { [Attr.containerImageName]: name };
  if (tagged) a[Attr.containerImageTags] = [withoutDigest.slice(colon + 1)];
  if (digest !== undefined) a[Attr.containerImageRepoDigests] = [`${name}@${digest}`];
  return a;
}
