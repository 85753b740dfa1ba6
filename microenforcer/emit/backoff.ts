/**
 * When to try an export again after `attempt` consecutive failures: exponential, capped, with
 * "equal jitter" (half fixed, half random) so a fleet of sidecars whose collector comes back
 * does not reconnect in step. The cap bounds how long a recovered backend waits for us.
 */
export interface RetryPolicy {
  initialMillis: number;
  maxMillis: number;
}

export const defaultRetryPolicy: RetryPolicy = { initialMillis: 500, maxMillis: 5000 };

/** A backend's own Retry-After is honoured, up to this. */
const MAX_RETRY_AFTER_MILLIS = 60_000;

/** `random` in [0, 1). */
export function retryDelay(attempt: number, random: number, policy: RetryPolicy, retryAfterMillis?: number): number {
  const ceiling = Math.min(policy.maxMillis, policy.initialMillis * 2 ** Math.max(0, attempt - 1));
  const jittered = ceiling / 2 + (random * ceiling) / 2;
  return retryAfterMillis === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMillis, MAX_RETRY_AFTER_MILLIS));
}
