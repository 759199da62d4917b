# The scoring worker (see docker-compose.yml): the project installed as a regular package, with
# every dependency at the exact version the test suite runs against (scripts/constraints.txt).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

COPY scripts/constraints.txt pyproject.toml README.md* ./
COPY schemas ./schemas
COPY streamer ./streamer
COPY models ./models
RUN pip install -c constraints.txt . \
    && useradd --create-home --uid 1000 streamer \
    && mkdir -p /app/data /app/models/registry \
    && chown -R streamer /app/data /app/models/registry

USER streamer
EXPOSE 6066
CMD ["fraud-streamer", "worker"]
