/**
 * The HTTP endpoint behind a native sidecar's startupProbe (sidecar-contract.ts,
 * STARTED_PORT): 503 until the sensor has taken its first look at the PID namespace, 200
 * after. The kubelet starts a pod's app containers once its native sidecars have started, so
 * their first processes are seen starting instead of found running.
 */
import { createServer } from "node:http";

export interface StartedEndpoint {
  close(): Promise<void>;
}

/** Listens on every address of the pod on `port`; `onError` hears why it cannot. */
export function serveStarted(port: number, watching: Promise<void>, onError: (message: string) => void): StartedEndpoint {
  let started = false;
  void watching.then(() => (started = true));
  const server = createServer((_request, response) => {
    response.writeHead(started ? 200 : 503, { "Content-Type": "text/plain" }).end(started ? "watching\n" : "starting\n");
  });
  server.on("error", (err) => onError(err.message));
  server.listen(port);
  return {
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
