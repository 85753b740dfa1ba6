/** Log records as the SDK hands them to processors and exporters, for the emit and spool tests. */
import { resourceFromAttributes } from "@opentelemetry/resources";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";

export const SECONDS = Date.parse("2026-03-01T12:00:00Z") / 1000;
export const resource = resourceFromAttributes({ "service.name": "microenforcer", "k8s.pod.name": "api-7f9c" });
export const scope = { name: "microenforcer" };

export function logRecord(fields: Partial<ReadableLogRecord>): ReadableLogRecord {
  return {
    hrTime: [SECONDS, 123_999_999],
    hrTimeObserved: [SECONDS + 1, 5_000_000],
    severityNumber: 9,
    severityText: "INFO",
    eventName: "microenforcer.process.exec",
    body: "exec /usr/bin/curl",
    attributes: {},
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    ...fields,
  };
}
