/** The package version, found from source (microenforcer/) and from the build (dist/microenforcer/) alike. */
import { readFileSync } from "node:fs";

function findVersion(): string {
  for (const up of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "microenforcer" && pkg.version !== undefined) return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return "0.0.0-unknown";
}

export const version = findVersion();
