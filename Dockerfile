# fallback's container image (docs/container.md): Debian's Python, the pinned dependencies of requirements.lock
# checked against their hashes, a non-root user, SQLite on the /data volume.
#
#   docker build -t fallback .
#   docker run -p 8000:8000 -v fallback-data:/data -e FALLBACK_MAIN_URL=https://origin.example.com fallback
#
# Needs BuildKit (the default builder of current Docker; DOCKER_BUILDKIT=1 on Docker 20.10) for the secret mounts.
# No `# syntax=` line: the Dockerfile frontend built into the engine is enough, so a build pulls nothing but FROM.

# The builder: a virtual environment under /opt/fallback, which the final stage copies as it is (same base,
# same Python, same path).
FROM debian:bookworm-slim AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/fallback
COPY requirements.lock /src/
# A package index other than PyPI, or a certificate to reach it, comes in as build secrets, mounted for this one
# step and never written into a layer: `--secret id=pip.conf,src=...` (pip's configuration file) and
# `--secret id=pip-cert,src=...` (a CA bundle that pip.conf names as /run/secrets/pip-cert).
# --only-binary: every dependency installs from a wheel, so nothing is compiled and the image needs no compiler.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-cert \
    /opt/fallback/bin/pip install --no-cache-dir --disable-pip-version-check \
        --require-hashes --only-binary :all: -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY fallback /src/fallback
COPY templates /src/templates
# The project itself, without dependencies: they are all in place, pinned and checked above. Building it fetches
# its build backend (hatchling), in the builder only. pip stays (sqlite-utils declares it); the setuptools that
# Debian's venv puts in goes, so that the environment holds the lock's pins and fallback, nothing else.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=pip-cert \
    /opt/fallback/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src \
    && /opt/fallback/bin/pip uninstall --yes --disable-pip-version-check setuptools

FROM debian:bookworm-slim
# Python and the CA certificates (mail over TLS, webhooks, the checker's HTTPS probes), nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A system user with no login shell; /data is its home and the only place it writes.
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin fallback \
    && install -d -o fallback -g fallback -m 0750 /data
COPY --from=builder /opt/fallback /opt/fallback
ENV PATH=/opt/fallback/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FALLBACK_DATABASE=/data/fallback.db \
    PORT=8000
VOLUME /data
WORKDIR /data
USER fallback:fallback
EXPOSE 8000
# PORT set: `fallback serve` listens on every interface of the container, on $PORT (a platform's, or 8000).
# healthz answers 200 while the database is writable and the checker beats; any other answer fails the check.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_fallback/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]
# gunicorn's master is PID 1: it handles SIGTERM itself (workers finish their requests, the checker hands over its
# lease), within the 10 s that `docker stop` waits before SIGKILL.
STOPSIGNAL SIGTERM
CMD ["fallback", "serve"]
