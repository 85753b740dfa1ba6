/**
 * What the ValidatingAdmissionPolicy (manifests/base/validating-policy.yaml) checks a pod's
 * sidecar against, published by the injector in a ConfigMap only it may write: the images
 * injectors of this cluster give the sidecar. The policy's CEL cannot recompute render;
 * these are the facts a pod's owner must not choose.
 */
export const IDENTITY_CONFIGMAP = "microenforcer-sidecar-identity";
/** Images (and keys) kept: the newest injectors' (a rolling upgrade has two; older ones age out). */
const MAX_IMAGES = 4;

export type IdentityData = Record<string, string>;

const words = (text: string | undefined) => (text ?? "").split(" ").filter((w) => w !== "");

export interface InjectorFacts {
  image: string;
  /** Base64 SPKI of the signing key; undefined for an injector that signs nothing. */
  policyKey: string | undefined;
}

/** `list` with `item` first when it is new (never reordered otherwise), the newest MAX_IMAGES kept. */
function withItem(list: string | undefined, item: string | undefined): string | undefined {
  const items = words(list);
  if (item === undefined || items.includes(item)) return list;
  return [item, ...items].slice(0, MAX_IMAGES).join(" ");
}

/**
 * The ConfigMap's data with this injector's facts in it; the current data itself when they
 * are there already (never reordered, so replicas of two versions do not take turns
 * rewriting it).
 */
export function identityData(current: IdentityData | undefined, facts: InjectorFacts): IdentityData {
  const images = withItem(current?.images, facts.image);
  const policyKeys = withItem(current?.policyKeys, facts.policyKey);
  if (current !== undefined && images === current.images && policyKeys === current.policyKeys) return current;
  return { ...current, ...(images !== undefined && { images }), ...(policyKeys !== undefined && { policyKeys }) };
}
