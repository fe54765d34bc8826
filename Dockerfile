# Deeply Good Fakes: the Gradio app (python app.py) on the CPU.
#
#   docker build -t deeply-good-fakes .
#   docker run --rm -p 7860:7860 deeply-good-fakes            # then open http://localhost:7860
#
# GPU variant: the same image with CUDA wheels of torch; the app then uses the GPU by itself (device "auto").
# Needs an NVIDIA driver and the NVIDIA Container Toolkit on the host; pick the CUDA index your driver supports:
#
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t deeply-good-fakes:gpu .
#   docker run --rm --gpus all -p 7860:7860 deeply-good-fakes:gpu
#
# Nothing is downloaded at run time: the weights (the face detector's too, weights/mtcnn) are copied into the image from weights/.
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860

RUN useradd --create-home --uid 1000 app
WORKDIR /app

# torch/torchvision come from TORCH_INDEX (CPU wheels by default: no CUDA libraries in the image), the rest from PyPI;
# requirements.txt pins every version.
COPY requirements.txt ./
RUN pip install --extra-index-url "${TORCH_INDEX}" -r requirements.txt

COPY dgf_core/ dgf_core/
COPY weights/ weights/
COPY ui/ ui/
COPY app.py ./

USER app
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/config', timeout=4)"
CMD ["python", "app.py"]
