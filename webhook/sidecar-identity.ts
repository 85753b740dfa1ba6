/**
 * What the ValidatingAdmissionPolicy (manifests/base/validating-policy.yaml) checks a pod's
 * sidecar against, published by the injector in a ConfigMap only it may write: the images
 * injectors of this cluster give the sidecar. The policy's CEL cannot recompute render;
 * these are the facts a pod's owner must not choose.
 */
export const IDENTITY_CONFIGMAP = "microenforcer-sidecar-identity";
/** Images kept: the newest injectors' (a rolling upgrade has two; older ones age out). */
const MAX_IMAGES = 4;

export type IdentityData = Record<string, string>;

const words = (text: string | undefined) => (text ?? "").split(" ").filter((w) => w !== "");

/**
 * The ConfigMap's data with this injector's facts in it; the current data itself when they
 * are there already (never reordered, so replicas of two versions do not take turns
 * rewriting it).
 */
export function identityData(current: IdentityData | undefined, image: string): IdentityData {
  const images = words(current?.images);
  if (images.includes(image)) return current!;
  return { ...current, images: [image, ...images].slice(0, MAX_IMAGES).join(" ") };
}
