# OneTimeShare: the wheel is built from the source in one stage and installed, alone, in the
# next. The final image holds no source tree and needs no Node: htmx is in static/vendor/.
# Read-only root file system friendly: everything written goes to the /data volume.
# tests/test_install.py runs this file's build commands and installs the wheel as below.

FROM python:3.13-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY templates ./templates
COPY static ./static
RUN pip wheel --no-cache-dir --no-deps --wheel-dir dist .

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
# The wheel is mounted for this one step, so no layer keeps a copy of it.
RUN --mount=type=bind,from=wheel,source=/src/dist,target=/wheels \
    pip install --no-cache-dir /wheels/onetimeshare-*.whl
USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["onetimeshare", "serve"]
