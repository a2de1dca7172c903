# syntax=docker/dockerfile:1
# One image for every Omniroute service. OMNIROUTE_SERVICE picks which one the default command
# serves (gateway 8000, inventory 8001, pricing 8002, orders 8003, console 8004, webhooks 8005;
# the console's templates and vendored scripts are package data: no front-end build). Migrations
# run from the same image with another command:
#   docker run -e OMNIROUTE_SERVICE=inventory -e DATABASE_URL=... -e KAFKA_BOOTSTRAP_SERVERS=... IMAGE
#   docker run -e OMNIROUTE_INVENTORY_DATABASE_URL=... IMAGE python -m services.infrastructure.migrations inventory
# Without the `embedded` and `dev` extras: PostgreSQL and Kafka are real servers here.

ARG PYTHON_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/omniroute
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services ./services
# Every dependency ships manylinux wheels for CPython 3.12, so no compiler is needed.
RUN /opt/omniroute/bin/pip install . \
    && /opt/omniroute/bin/python -m compileall -q /opt/omniroute/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="omniroute" \
      org.opencontainers.image.description="Omniroute: gateway, inventory, pricing, orders and webhooks services, and the store console" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 omniroute \
    && useradd --system --uid 10001 --gid omniroute --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin omniroute
COPY --from=build /opt/omniroute /opt/omniroute
COPY --chmod=0755 deploy/docker/serve /usr/local/bin/omniroute-serve
ENV PATH=/opt/omniroute/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OMNIROUTE_LOG_FORMAT=json
# No source tree at run time: the services are imported from site-packages.
WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000 8001 8002 8003 8004 8005
CMD ["omniroute-serve"]
