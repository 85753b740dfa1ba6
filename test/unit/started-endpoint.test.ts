/**
 * The endpoint a native sidecar's startupProbe asks: the kubelet holds the app containers
 * back until it answers 200, which it does only once the sensor watches.
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { serveStarted } from "../../microenforcer/started-endpoint.ts";
import { freeTcpPorts } from "../infra/processes.ts";

const probe = async (port: number) => (await fetch(`http://127.0.0.1:${port}/started`)).status;

describe("startup probe endpoint", () => {
  it("answers 503 until the sensor watches, 200 after", async () => {
    const [port] = await freeTcpPorts(1);
    let markWatching!: () => void;
    const endpoint = serveStarted(port!, new Promise((resolve) => (markWatching = resolve)), assert.fail);
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await probe(port!), 503);
      markWatching();
      await Promise.resolve();
      assert.equal(await probe(port!), 200);
    } finally {
      await endpoint.close();
    }
  });

  it("says why when the port is taken", async () => {
    const [port] = await freeTcpPorts(1);
    const squatter = createServer().listen(port!);
    await new Promise((resolve) => squatter.once("listening", resolve));
    try {
      const error = await new Promise<string>((resolve) => {
        const endpoint = serveStarted(port!, Promise.resolve(), (message) => void endpoint.close().then(() => resolve(message)));
      });
      assert.match(error, /EADDRINUSE/);
    } finally {
      squatter.close();
    }
  });
});
