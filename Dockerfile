# Dais in a slim image: `docker build -t dais .` then
# `docker run -p 8000:8000 -e DAIS_DATABASE_URL=postgresql+asyncpg://user:pass@db/dais dais`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DAIS_DATA_DIR=/var/lib/dais
WORKDIR /opt/dais

COPY pyproject.toml setup.py README.md requirements.lock ./
COPY app ./app
COPY chat ./chat
COPY streaming ./streaming
COPY migrations ./migrations
COPY frontend ./frontend
# Exactly the dependencies the suite ran with (requirements.lock, hashed), then Dais itself,
# editable, so the frontend and migrations are read from this folder. gcc builds the media
# forwarder's C fan-out (streaming/_fanout.c) and is removed again afterwards.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir --require-hashes -r requirements.lock \
 && pip install --no-cache-dir --no-deps --no-build-isolation -e . \
 && python -c "import streaming._fanout" \
 && apt-get purge -y --auto-remove gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/dais --create-home dais

USER dais
EXPOSE 8000
# The database URL, base URL and secret key come from the environment (DAIS_*).
CMD ["dais", "serve", "--host", "0.0.0.0", "--port", "8000"]
