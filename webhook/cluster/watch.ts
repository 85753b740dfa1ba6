/** client-node informers that restart after a dropped watch (they stop on error otherwise). */
import { makeInformer, type Informer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ObjectCache } from "@kubernetes/client-node";

export type Cache<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

export async function startInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  onChange: () => void,
  log: (message: string) => void,
): Promise<Cache<T>> {
  const informer = makeInformer(kc, path, list);
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
