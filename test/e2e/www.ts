/**
 * The test environment's stand-in for the internet: an HTTPS server for www.google.com on
 * this machine's address on the pod network, presenting the certificate the test CA signed
 * (../infra/podman/build.sh), which the nginx image trusts; the cluster DNS sends the name
 * here. Nothing leaves the machine. Each answer waits a moment, so the connection lives long
 * enough for the sidecar's socket sensor to see it open.
 */
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer } from "node:https";
import type { Images } from "../infra/podman/podman.ts";

export const WWW = "www.google.com";
const ANSWER_DELAY_MILLIS = 1500;

export interface Www {
  /** What a client gets for `path`. */
  body(path: string): string;
  stop(): Promise<void>;
}

export async function startWww(address: string, testCa: Images["testCa"]): Promise<Www> {
  const body = (path: string) => `hello from ${WWW}${path}\n`;
  const [cert, key] = await Promise.all([readFile(testCa.serverCert), readFile(testCa.serverKey)]);
  const server = createServer({ cert, key }, (request, response) => {
    setTimeout(() => response.end(body(request.url ?? "/")), ANSWER_DELAY_MILLIS);
  });
  server.listen(443, address);
  await once(server, "listening");
  return {
    body,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
