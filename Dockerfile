# The gateway's image: `docker build -t llm-gateway .` (podman and buildah read it too).
# Runtime dependencies only, exactly as requirements.lock pins them; `--build-arg TRACING=1` adds the
# `tracing` extra (OpenTelemetry, at requirements-dev.lock's versions). PYTHON_IMAGE is any Debian-based
# Python 3.11 image (the locks are resolved for 3.11); both stages use it, so the venv's links hold.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TRACING=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --quiet pip==26.3
# The dependencies first: this layer is reused until a lock file changes.
COPY requirements.lock requirements-dev.lock ./
RUN /opt/venv/bin/pip install --quiet --require-virtualenv -r requirements.lock
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/venv/bin/pip install --quiet --require-virtualenv --no-deps . \
    && if [ "$TRACING" = 1 ]; then /opt/venv/bin/pip install --quiet --require-virtualenv -c requirements-dev.lock ".[tracing]"; fi

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
# GATEWAY_HOST/GATEWAY_PORT are read by the built-in configuration and by config files that say so, as
# config/gateway.yaml does (HEALTHCHECK asks GATEWAY_PORT); a config file comes from GATEWAY_CONFIG or `--config`.
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
# The gateway is PID 1 (`exec`): SIGTERM turns /readyz to 503, waits server.drain_delay_seconds, stops
# accepting, lets requests and streams finish within server.shutdown_grace_seconds and exits 0; several
# workers are uvicorn's supervisor and its children, which it reaps. GATEWAY_WORKERS, when set, is the
# number of worker processes (`--workers`, over server.workers); extra arguments go to `gateway serve`.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["/bin/sh", "-c", "exec gateway serve ${GATEWAY_WORKERS:+--workers \"$GATEWAY_WORKERS\"} \"$@\"", "gateway"]
