import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import { DOWNWARD_API } from "../sidecar-contract.ts";

/**
 * The resource every record carries. Later sources win: our defaults, then the
 * downward API, then what the injector knew of the pod (its workload, labels, cluster and
 * cloud: sidecar-contract.ts, WORKLOAD_ENV), then the admin's explicit
 * OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (the SDK's own precedence). Empty or absent
 * variables add nothing.
 */
export function buildResource(env: NodeJS.ProcessEnv, version: string, workload: Readonly<Record<string, string>> = {}): Resource {
  const attributes: Record<string, string> = {
    "service.name": "microenforcer",
    "service.version": version,
  };
  for (const { env: variable, resourceKey } of DOWNWARD_API) {
    const value = env[variable];
    if (value) attributes[resourceKey] = value;
  }
  Object.assign(attributes, workload, parseResourceAttributes(env.OTEL_RESOURCE_ATTRIBUTES));
  if (env.OTEL_SERVICE_NAME) attributes["service.name"] = env.OTEL_SERVICE_NAME;
  return resourceFromAttributes(attributes);
}

/**
 * `key=value,...` with percent-encoding. The SDK's detector parses this the same way but
 * only from process.env, hence our own. Per the spec, any malformed entry discards the
 * whole variable.
 */
export function parseResourceAttributes(raw: string | undefined): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const entry of (raw ?? "").split(",")) {
    if (entry.trim() === "") continue;
    const parts = entry.split("=");
    if (parts.length !== 2) return {};
    const [rawKey = "", rawValue = ""] = parts;
    try {
      const key = decodeURIComponent(rawKey.trim());
      if (key === "") return {};
      attributes[key] = decodeURIComponent(rawValue.trim());
    } catch {
      return {};
    }
  }
  return attributes;
}
