/** Where the preload library is: the files the build makes and the names it has in the pod. */

export const libraryFile = "libmicroenforcer-exec.so";
export const socketFile = "exec.sock";

const machines: Partial<Record<NodeJS.Architecture, string>> = { x64: "x86_64", arm64: "aarch64" };

/** The build's library for a Node architecture name (`npm run build`, preload/build.sh). */
export function builtLibrary(arch: NodeJS.Architecture = process.arch): string {
  const machine = machines[arch];
  if (machine === undefined) throw new Error(`the preload library is built for x86_64 and aarch64 only, not ${arch}`);
  // dist/microenforcer/capture/ when compiled; microenforcer/capture/ (beside dist/) in tests.
  const dist = new URL(import.meta.url.endsWith(".ts") ? "../../dist/" : "../../", import.meta.url);
  return new URL(`preload/${machine}/${libraryFile}`, dist).pathname;
}
