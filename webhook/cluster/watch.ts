/** client-node informers that restart after a dropped watch (they stop on error otherwise). */
import { ListWatch, Watch, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from "@kubernetes/client-node";

export type Cache<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export async function startInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  onChange: () => void,
  log: (message: string) => void,
  /** e.g. `metadata.name=kube-dns`: RBAC may then grant list and watch on that one name. */
  fieldSelector?: string,
): Promise<Cache<T>> {
  const informer = new ListWatch<T>(path, new Watch(kc), list, false, undefined, fieldSelector);
  for (const verb of ["add", "update", "delete"] as const) informer.on(verb, onChange);
  // Stopping aborts the watch, which the informer reports as an error: not one to log or restart after.
  let stopped = false;
  const stop = informer.stop.bind(informer);
  informer.stop = () => {
    stopped = true;
    return stop();
  };
  informer.on("error", (err: unknown) => {
    if (stopped) return;
    log(`watch ${path} failed (${(err as Error)?.message ?? String(err)}); restarting in 2 s`);
    setTimeout(() => {
      if (!stopped) void informer.start().catch(() => undefined);
    }, 2000).unref();
  });
  await informer.start();
  return informer;
}
