# OneTimeShare: the front-end libraries from npm in one stage, the service in the next.
# Read-only root file system friendly: everything written goes to the /data volume.

FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error

FROM python:3.13-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OTS_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000
RUN useradd --system --uid 10001 --home-dir /srv/onetimeshare --shell /usr/sbin/nologin ots \
    && mkdir -p /data \
    && chown ots /data
WORKDIR /srv/onetimeshare
COPY pyproject.toml README.md ./
COPY app ./app
COPY templates ./templates
COPY static ./static
COPY --from=assets /build/node_modules/htmx.org/dist/htmx.min.js static/vendor/htmx.min.js
COPY --from=assets /build/node_modules/htmx-ext-sse/dist/sse.min.js static/vendor/sse.min.js
# Editable, so the templates and static files stay beside the package where it looks for them.
RUN pip install --no-cache-dir -e .
USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["onetimeshare", "serve"]
