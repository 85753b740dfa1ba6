/** kubectl against the test control plane, for tests that expect it to succeed. */
import type { ControlPlane } from "../infra/kube/control-plane.ts";

/** kubectl's stdout; a non-zero exit throws with its stderr. */
export async function kubectl(cp: ControlPlane, args: string[], input?: string): Promise<string> {
  const result = await cp.kubectl(args, { input });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** `kubectl ... -o json`, parsed. */
export async function kubectlJson(cp: ControlPlane, args: string[]): Promise<unknown> {
  return JSON.parse(await kubectl(cp, [...args, "-o", "json"]));
}
