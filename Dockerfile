# AutoTrader: one image for the signal gateway (default command), the pipelines and the scheduler.
#   docker build -t autotrader:dev .
#   docker run --rm -p 8080:8080 -v autotrader-data:/data autotrader:dev                      # gateway on :8080
#   docker run --rm -v autotrader-data:/data autotrader:dev autotrader run ingest             # one pipeline run
#   docker run --rm -v autotrader-data:/data autotrader:dev autotrader schedule run           # the scheduler
# Settings: AUTOTRADER__SECTION__KEY environment variables (or mount a settings.ini and set AUTOTRADER_SETTINGS);
# secrets: environment variables only (docker run --env-file, ECS secrets), never baked into the image.
# Dependencies: installed with constraints.txt, the exact versions the test suite ran with (not just lower bounds).
# Base image: pinned by digest (a tag can move under a rebuild; a digest cannot), linux/amd64 as the ECS tasks run.
# To move to a newer one: `docker buildx imagetools inspect python:3.11-slim`, then
# `docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> …` or change the default below
# (tests/test_ops_contracts.py checks that every image the project runs is pinned by digest).
ARG PYTHON_IMAGE=python:3.11.11-slim@sha256:a8e0a3090316aed0b11037aac613aef32fb1747dcc1dcb5c0f6c727a0113a07f

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY autotrader ./autotrader
COPY nbs/pipelines ./nbs/pipelines
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLBACKEND=Agg \
    HOME=/home/autotrader \
    AUTOTRADER__DATA__DIR=/data \
    AUTOTRADER__REPORTS__DIR=/data/reports \
    AUTOTRADER__DEPLOY__HOST=0.0.0.0 \
    AUTOTRADER__DEPLOY__PORT=8080
RUN groupadd --gid 10001 autotrader \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/autotrader --shell /usr/sbin/nologin autotrader \
 && mkdir -p /data /app \
 && chown autotrader:autotrader /data /app
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt /wheels/*.whl && rm -rf /wheels /tmp/constraints.txt
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# Liveness: the gateway answers GET /healthz (a container that stops answering is unhealthy and is replaced). Not
# /readyz: a fresh gateway is alive but not ready until a model version is deployed (readiness is the load
# balancer's check, which only decides where traffic goes). HTTPS when the gateway serves TLS ([deploy] tls_*).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('AUTOTRADER__DEPLOY__TLS_CERTFILE')) or os.environ.get('AUTOTRADER__DEPLOY__TLS_SELF_SIGNED', '').lower() in ('1', 'true', 'yes', 'on'); urllib.request.urlopen(('https' if tls else 'http') + '://127.0.0.1:%s/healthz' % os.environ.get('AUTOTRADER__DEPLOY__PORT', '8080'), timeout=3, context=ssl._create_unverified_context() if tls else None)"]
CMD ["autotrader", "serve"]
