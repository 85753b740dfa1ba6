# One image for the injector (`microenforcer webhook`) and the sidecar (`microenforcer watch`).
# docker build -t microenforcer:0.1.0 .

# Build: compile TypeScript with the full toolchain.
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY cli ./cli
COPY microenforcer ./microenforcer
COPY policies ./policies
COPY webhook ./webhook
RUN npx tsc -p tsconfig.json
# The preload library (complete mode): C without libc, so a compiler for this stage only.
RUN command -v cc >/dev/null || { apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*; }
COPY preload ./preload
RUN sh preload/build.sh

# Runtime dependencies only (no TypeScript, no test tools, no bundled Node binary).
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# The sidecar's command is `microenforcer watch ...`: put the CLI on PATH.
RUN chmod 0755 dist/cli/main.js && ln -s /app/dist/cli/main.js /usr/local/bin/microenforcer
# Non-root by default; the injector sets the sidecar's UID to the app's when it knows it.
USER 65532:65532
ENTRYPOINT ["microenforcer"]
CMD ["webhook", "--self-signed"]
