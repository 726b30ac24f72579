# syntax=docker/dockerfile:1.7
# FairAudit service image.
#   CPU (default):  docker build -t fairaudit .
#   GPU hosts:      docker build -t fairaudit:gpu --build-arg TARGET=gpu .
# The GPU variant installs the CUDA build of torch and onnxruntime-gpu *instead of* onnxruntime
# (never both in one environment) on a CUDA runtime base image.

ARG TARGET=cpu
ARG PYTHON_VERSION=3.11
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---------- build stage: a virtual environment with every dependency ----------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG TARGET
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /srv/fairaudit
# Dependencies first (cached layer), the source after.
COPY pyproject.toml README.md ./
RUN if [ "$TARGET" = "gpu" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CUDA_INDEX}"; \
    else \
        pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu; \
    fi
COPY app ./app
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install -e . \
 && if [ "$TARGET" = "gpu" ]; then pip uninstall -y onnxruntime && pip install onnxruntime-gpu; fi \
 && python -c "import app.main, onnxruntime; print(onnxruntime.get_available_providers())"

# ---------- runtime stages ----------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime-cpu
FROM ${CUDA_BASE} AS runtime-gpu
# The venv points at the build stage's interpreter in /usr/local; bring that interpreter along
# (glibc on the CUDA base is newer than bookworm's, so its binaries run unchanged).
COPY --from=build /usr/local /usr/local
RUN ldconfig

FROM runtime-${TARGET} AS runtime
RUN groupadd --system fairaudit && useradd --system --gid fairaudit --home /srv/fairaudit fairaudit \
 && mkdir -p /var/lib/fairaudit/data /var/lib/fairaudit/models \
 && chown -R fairaudit:fairaudit /var/lib/fairaudit
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=root:root /srv/fairaudit /srv/fairaudit
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FAIRAUDIT_HOST=0.0.0.0 \
    FAIRAUDIT_DATA_DIR=/var/lib/fairaudit/data \
    FAIRAUDIT_MODEL_DIR=/var/lib/fairaudit/models
WORKDIR /srv/fairaudit
USER fairaudit
VOLUME ["/var/lib/fairaudit"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
ENTRYPOINT ["fairaudit"]
CMD ["serve"]
