# One image for every epochstream service (worker, scheduler, api) and the example trainer.
#   docker compose build && docker compose up --scale worker=4
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# CPU torch first (a large, rarely changing layer) for the example trainer; services do not import it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

COPY pyproject.toml README.md ./
COPY schemas schemas
COPY producer producer
COPY workers workers
COPY query_api query_api
COPY epochstream epochstream
# The s3 extra: s3fs for `epochstream sql` over a log on S3 (docker-compose.scale.yml); drains use pyarrow's.
RUN pip install ".[gpu,s3]"

# Not root; /data (the data directory: Parquet log, projections, DuckDB catalog) owned by that user, so
# a named volume mounted there starts with the right owner.
RUN useradd --uid 1000 --create-home epochstream && mkdir -p /data /spool && chown epochstream /data /spool
USER epochstream
ENV EPOCHSTREAM_DATA_DIR=/data EPOCHSTREAM_SPOOL_DIR=/spool
VOLUME ["/data"]
EXPOSE 8000

CMD ["epochstream", "--help"]
