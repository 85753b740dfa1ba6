/** Polling for what the real components do a moment later. */
import { setTimeout as sleep } from "node:timers/promises";

/** Polls `probe` every 200 ms until it returns something other than undefined. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMillis = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMillis;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMillis} ms waiting for ${what}`);
    await sleep(200);
  }
}
