# Tradewind in one container: docker build -t tradewind . && docker run -p 8080:8080 -v tradewind-data:/data tradewind

# The order path's hottest modules compiled with mypyc (app/native.py); the full image has the C compiler.
FROM python:3.11 AS native
WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY components ./components
COPY storage ./storage
RUN pip install --no-cache-dir ".[native]" && python -m app.native_build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY app ./app
COPY components ./components
COPY storage ./storage
COPY main.py alembic.ini ./
# Found by app/native.py beside the source it was built from (the key is the source's hash: same files, same key).
COPY --from=native /app/build/native ./build/native
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home /app tradewind \
    && mkdir -p /data && chown tradewind /data

USER tradewind
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/health').status != 200)"
CMD ["python", "main.py"]
