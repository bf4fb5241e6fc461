# syntax=docker/dockerfile:1
# Gatehouse's production image (docs/deployment.md).
#
#   docker build -t gatehouse .
#   docker run --env-file .env -p 127.0.0.1:8000:8000 gatehouse
#
# Two stages: the builder installs the hash-pinned runtime dependencies (requirements.txt only,
# never requirements-dev.txt) into /opt/venv; the final stage copies that venv and the code that
# runs, and nothing else: no compiler, no pip cache, no tests, no .git. It serves with gunicorn
# (gunicorn.conf.py) as an unprivileged user with a fixed uid/gid, so Kubernetes' runAsNonRoot
# can check it and a read-only root filesystem works (only /tmp and /dev/shm are written).
# Migrations are never run here: `flask --app manage db upgrade` is its own command (compose's
# `migrate` service, the Helm chart's pre-install/pre-upgrade Job).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Every line of requirements.txt carries its sha256: pip refuses anything else. Wheels only:
# every dependency has a manylinux wheel for CPython 3.11, so nothing is compiled.
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
        -r /tmp/requirements.txt \
    && /opt/venv/bin/pip check


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Accounts and authentication as a service" \
      org.opencontainers.image.licenses="MIT"

# A fixed, unprivileged uid/gid (10001): the Helm chart's runAsUser matches it.
RUN groupadd --system --gid 10001 gatehouse \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gatehouse \
    && install -d -o 10001 -g 10001 -m 0700 /tmp/gatehouse-metrics /keys

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEHOUSE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/gatehouse-metrics

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Only what runs: the package, the migrations, and the entry points.
COPY app/ ./app/
COPY migrations/ ./migrations/
COPY config.py run.py manage.py gunicorn.conf.py ./
# Byte-compile once at build time: the running container may not write here.
RUN python -m compileall -q /app

USER 10001:10001

EXPOSE 8000

# Liveness of the process only (/healthz checks nothing external). No curl in the image: the
# standard library asks. The probes answer any Host; the first of TRUSTED_HOSTS is sent anyway,
# as a browser or proxy would.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = (os.environ.get('TRUSTED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.'); u.urlopen(u.Request('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', headers={'Host': h}), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "run:app"]
