# The distributor image: one image for the web, worker, beat and migrate services
# (docker-compose.yml picks the command). Build: docker build -t distributor .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so that files in the var/ volume keep one owner across rebuilds.
RUN groupadd --system --gid 10001 distributor \
 && useradd --system --uid 10001 --gid distributor --home-dir /app --shell /usr/sbin/nologin distributor

WORKDIR /app

# The package first: this layer is rebuilt only when the code or its dependencies change.
COPY pyproject.toml README.md ./
COPY distributor ./distributor
COPY tasks ./tasks
# Editable, so the package finds templates/ beside it in /app (PROJECT_ROOT), exactly as
# in a development checkout.
RUN pip install -e .

# Operator-editable files, read from the working directory (config/distributor.toml is
# found there first; DISTRIBUTOR_CONFIG can point elsewhere, e.g. a mounted file).
COPY config ./config
COPY templates ./templates

# var/ holds the SQLite database (unused with DATABASE_URL) and the outbox; compose mounts
# a volume here, which takes this directory's owner when first created.
RUN mkdir -p /app/var && chown distributor:distributor /app/var

USER distributor
EXPOSE 8000
CMD ["distributor", "web", "--host", "0.0.0.0", "--port", "8000"]
