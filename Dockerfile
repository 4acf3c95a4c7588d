# Loopgate in a container: SQLite in /data by default, or point
# LOOPGATE_DATABASE__URL at Postgres.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LOOPGATE_DATABASE__URL=sqlite:////data/loopgate.db \
    LOOPGATE_LOG__FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY loopgate ./loopgate
COPY migrations ./migrations
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /app loopgate \
 && mkdir /data && chown loopgate /data

USER loopgate
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
CMD ["loopgate", "serve", "--host", "0.0.0.0"]
