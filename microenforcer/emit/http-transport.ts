/** OTLP/HTTP (protobuf or JSON body): one POST per attempt, the answer classified. */
import type * as HttpExporterBase from "@opentelemetry/otlp-exporter-base/node-http";
import type { ReadableLogRecord } from "@opentelemetry/sdk-logs";
import type { Agent, IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { version } from "../version.ts";
import { deliveredOutcome, httpOutcome, networkOutcome, type SendOutcome } from "./export-outcome.ts";
import { readPartialSuccess, type LogsSerializer, type OtlpTransport } from "./otlp-transport.ts";

const lazyRequire = createRequire(import.meta.url);
const gzipAsync = promisify(gzip);

/** More than any OTLP answer needs; a larger body is cut off (and its status still counts). */
const MAX_RESPONSE_BYTES = 1 << 20;

export function createHttpTransport(serializer: LogsSerializer, contentType: string): OtlpTransport {
  const { convertLegacyHttpOptions } = lazyRequire("@opentelemetry/otlp-exporter-base/node-http") as typeof HttpExporterBase;
  const config = convertLegacyHttpOptions({}, "LOGS", "v1/logs", { "Content-Type": contentType });
  const url = new URL(config.url);
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  const agent = Promise.resolve(config.agentFactory(url.protocol));
  const userAgent = `microenforcer/${version}`;

  return {
    async send(records: ReadableLogRecord[]): Promise<SendOutcome> {
      try {
        const serialized = serializer.serializeRequest(records) ?? new Uint8Array();
        const headers: Record<string, string> = { ...(await config.headers()), "User-Agent": userAgent };
        const body = config.compression === "gzip" ? await gzipAsync(serialized) : serialized;
        if (config.compression === "gzip") headers["Content-Encoding"] = "gzip";
        const response = await post(request, url, headers, await agent, body, config.timeoutMillis);
        if (response.status >= 200 && response.status < 300) return deliveredOutcome(readPartialSuccess(serializer, response.body), records.length);
        return httpOutcome(response.status, response.retryAfter, response.body.toString("utf8"), Date.now());
      } catch (error) {
        return networkOutcome(error as Error);
      }
    },
    shutdown() {
      void agent.then((a) => a.destroy());
    },
  };
}

interface HttpAnswer {
  status: number;
  retryAfter: string | undefined;
  body: Buffer;
}

function post(
  request: typeof httpRequest,
  url: URL,
  headers: Record<string, string>,
  agent: Agent,
  body: Uint8Array,
  timeoutMillis: number,
): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request(url, { method: "POST", headers: { ...headers, "Content-Length": String(body.byteLength) }, agent }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_RESPONSE_BYTES) chunks.push(chunk);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: headerValue(res.headers["retry-after"]), body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    // OTEL_EXPORTER_OTLP_TIMEOUT bounds the whole attempt, not only the socket's idle time.
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMillis} ms`)), timeoutMillis);
    req.on("close", () => clearTimeout(timer));
    req.on("error", reject);
    req.end(body);
  });
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
