/** Tests and benchmarks run the sensor as the injector runs the sidecar: Node with its NODE_OPTIONS (heap sizes for its memory limit). */
import { defaultInjectorConfig } from "../../webhook/config.ts";
import { sidecarNodeOptions } from "../../webhook/sidecar-heap.ts";

export const SIDECAR_NODE_OPTIONS = sidecarNodeOptions(defaultInjectorConfig().resources.limits.memory);
/** `node` and those options as command-line flags, to start a sensor with. */
export const sidecarNode = [process.execPath, ...SIDECAR_NODE_OPTIONS.split(" ")];
