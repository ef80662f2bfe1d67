# Careline: one image, the role is the command (`serve --role web|relay|all`, `migrate`).
#
# scripts/build-image.sh makes what this file expects: build/wheelhouse/ holding careline's own
# wheel and every runtime dependency at the versions pinned in requirements.lock, and (where no
# base image can be pulled) a local Debian base passed as --build-arg BASE=... The build itself
# needs no network.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS builder
# The wheelhouse and the lock are bind-mounted, not copied: they never become a layer.
# --no-index: everything comes from the wheelhouse, so the build runs with --network none.
# pip is removed afterwards (the runtime never installs anything), and so are the test suites
# of the numeric libraries (~60 MB that nothing imports).
RUN --mount=type=bind,source=build/wheelhouse,target=/wheels \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        --constraint /tmp/requirements.lock /wheels/careline-*.whl \
    && /opt/venv/bin/python -m pip uninstall --yes --quiet pip setuptools \
    && find /opt/venv/lib/python3*/site-packages/numpy /opt/venv/lib/python3*/site-packages/scipy \
        /opt/venv/lib/python3*/site-packages/sklearn -depth -type d -name tests -exec rm -rf {} +

FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/careline \
    CARELINE_HOST=0.0.0.0 \
    CARELINE_PORT=8000 \
    CARELINE_LOG_JSON=true \
    CARELINE_DATA_DIR=/var/lib/careline \
    CARELINE_DATABASE_URL=sqlite+aiosqlite:////var/lib/careline/careline.db
# A fixed numeric uid, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
RUN groupadd --gid 10001 careline \
    && useradd --uid 10001 --gid careline --no-log-init --no-create-home \
        --home-dir /var/lib/careline --shell /usr/sbin/nologin careline \
    && install -d -o careline -g careline -m 0700 /var/lib/careline
COPY --from=builder /opt/venv /opt/venv
WORKDIR /var/lib/careline
USER 10001:10001
EXPOSE 8000
# Python, not curl: the slim base has no HTTP client, and adding one only for this is waste.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('CARELINE_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["careline"]
CMD ["serve", "--role", "all"]
