/**
 * The sidecar's V8 heap sizes. Node sizes a heap from the container's memory limit, but as
 * if it were the only one: 259 MB for a 160Mi limit, for the main thread's heap and again
 * for the capture worker's, so garbage may pile up past the limit before V8 collects it
 * (without a limit, the 20 000-socket hardening test peaked at 450 MiB RSS). Each heap
 * here may hold 40 % of the limit; the rest is left for code, stacks and native buffers.
 * Young generations of 2 MB semi-spaces trade a little CPU for ~50 MB less RSS under load.
 */

/** Share of the memory limit each of the two heaps may hold. */
const HEAP_SHARE = 0.4;
const SEMI_SPACE_MB = 2;

const SUFFIXES: Record<string, number> = { "": 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A Kubernetes memory quantity ("160Mi", "256M", "1Gi", "134217728") in bytes; undefined when unreadable. */
export function memoryBytes(quantity: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(quantity.trim());
  return match === null ? undefined : Number(match[1]) * SUFFIXES[match[2] ?? ""]!;
}

/** NODE_OPTIONS for a sidecar with this memory limit (none, or unreadable: young generations only). */
export function sidecarNodeOptions(memoryLimit: string | undefined): string {
  const bytes = memoryLimit === undefined ? undefined : memoryBytes(memoryLimit);
  const semi = `--max-semi-space-size=${SEMI_SPACE_MB}`;
  return bytes === undefined ? semi : `--max-old-space-size=${Math.max(16, Math.floor((bytes * HEAP_SHARE) / 2 ** 20))} ${semi}`;
}
