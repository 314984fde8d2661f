# syntax=docker/dockerfile:1
# One recipe for every service's image; SERVICE picks it. From the repository root:
#   docker build --build-arg SERVICE=token-broker --build-arg DEFAULT_PORT=3001 --build-arg PORTS="3001 9465" .
# SERVICE: token-broker, login-api or wechat-sim. DEFAULT_PORT: the service's own default PORT,
# for the health check. PORTS: what the image declares it listens on.
ARG SERVICE=token-broker

FROM node:24-bookworm-slim AS build
WORKDIR /repo
RUN npm i -g pnpm@10
# The manifests first and SERVICE only after the install: the three images share the install
# layer, and a change to the sources alone does not install again.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.base.json ./
COPY packages/broker-client/package.json ./packages/broker-client/
COPY packages/login-api/package.json ./packages/login-api/
COPY packages/miniprogram/package.json ./packages/miniprogram/
COPY packages/service-kit/package.json ./packages/service-kit/
COPY packages/testing/package.json ./packages/testing/
COPY packages/token-broker/package.json ./packages/token-broker/
COPY packages/wechat-sim/package.json ./packages/wechat-sim/
COPY test/package.json ./test/
COPY examples/miniprogram/package.json ./examples/miniprogram/
RUN pnpm install --frozen-lockfile --ignore-scripts
COPY packages ./packages
ARG SERVICE
RUN pnpm --filter "@wxlogin/${SERVICE}..." build
# Production dependencies only, workspace packages included as built output.
RUN pnpm --filter "@wxlogin/${SERVICE}" deploy --prod --legacy /out

FROM node:24-bookworm-slim
ARG DEFAULT_PORT=3001
ARG PORTS="3001 9465"
ENV NODE_ENV=production
ENV DEFAULT_PORT=${DEFAULT_PORT}
WORKDIR /app
COPY --from=build --chown=node:node /out ./
USER node
EXPOSE ${PORTS}
# No spaces in the check's arguments: podman's Docker-compatible API splits them on spaces.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||process.env.DEFAULT_PORT)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/server.js"]
