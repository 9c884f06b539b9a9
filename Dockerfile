# One ipchain node. The bundle (from `ipchain net init`) is mounted at /bundle and the
# node's data lives in /bundle/data (a volume); nothing secret is baked into the image.
#   docker build -t ipchain .
#   docker run -v $PWD/net/node0:/bundle:ro -v node0-data:/bundle/data -p 26600:26600 ipchain
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY consensus consensus
COPY contracts contracts
COPY node node
COPY ipchain ipchain
COPY scripts scripts
COPY configs configs
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /bundle ipchain \
    && mkdir -p /bundle/data && chown ipchain /bundle/data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER ipchain
WORKDIR /bundle
EXPOSE 26600 26656
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:26600/v1/status', timeout=2).status != 200)"
ENTRYPOINT ["python", "-m", "node", "--config", "/bundle/config.toml"]
