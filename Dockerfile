# Elspeth: the sidecar daemon (sidecar, 1001) and the orchestrator (appuser, 1000) under
# supervisord; plugin workers run on demand as appplugin (1002) through sudo. See docker/README.md.
#
#   docker build --target runtime -t elspeth:latest .
#   docker build --target dev -t elspeth:dev .
#
# BASE_IMAGE: any Debian bookworm image. The default is the official slim Python image; a plain
# Debian bookworm image works as well (python3 and python3-venv then come from Debian), e.g. one
# made by scripts/container-setup.sh where no registry is reachable:
#   podman build --network=host --build-arg BASE_IMAGE=localhost/elspeth-base:bookworm ...
# Behind a TLS-inspecting proxy, give pip the proxy's CA bundle as a build secret (never a layer):
#   --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- system: OS packages, the three users; shared by every stage -------------------------------
FROM ${BASE_IMAGE} AS system
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8
# Debian's own packages track the bookworm point release; pinning them would break the build at
# the next security update, so versions come from the base image's release instead (DL3008).
# tini: the entrypoint puts it in front of a given command (`docker run elspeth:dev pytest`) as
# PID 1, which reaps the orphans the kernel hands to PID 1; the command itself would not (see
# docker/entrypoint.sh). procps: `ps` for the troubleshooting commands and the isolation tests.
# $python_packages is empty or two names: split on purpose (SC2086).
# hadolint ignore=DL3008,SC2086
RUN python_packages=""; \
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then \
        python_packages="python3 python3-venv"; \
    fi; \
    apt-get update \
    && apt-get install -y --no-install-recommends \
        sudo supervisor ca-certificates libseccomp2 tini procps $python_packages \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 1001 sidecar \
    && useradd --uid 1001 --gid sidecar --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin sidecar \
    && groupadd --gid 1000 appuser \
    && useradd --uid 1000 --gid appuser --groups sidecar --create-home --shell /bin/bash appuser \
    && groupadd --gid 1002 appplugin \
    && useradd --uid 1002 --gid appplugin --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin appplugin

# --- deps: the virtualenv with the locked dependencies (cached until the lock changes) ---------
FROM system AS deps
WORKDIR /build
COPY pyproject.toml constraints.txt ./
# The venv is made by the base image's python3 (/usr/local/bin in the slim image, /usr/bin on
# Debian). Dependencies come before the sources so that a source change reuses this layer.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    python3 -m venv /opt/venv \
    && /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open( \
        "pyproject.toml", "rb"))["project"]["dependencies"]))' >requirements.txt \
    && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --constraint constraints.txt --requirement requirements.txt

# --- test-deps: the same plus the test extra (for the dev image) -------------------------------
FROM deps AS test-deps
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open( \
        "pyproject.toml", "rb"))["project"]["optional-dependencies"]["test"]))' >test.txt \
    && /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        --constraint constraints.txt --requirement test.txt

# --- build / dev-build: the package itself (not editable) on top of either --------------------
FROM deps AS build
COPY README.md ./
COPY src ./src
# pip compiles every module to bytecode on install, so workers never compile at start.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/venv/bin/python -m pip check

FROM test-deps AS dev-build
COPY README.md ./
COPY src ./src
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi; \
    /opt/venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && /opt/venv/bin/python -m pip check

# --- runtime: what production runs -------------------------------------------------------------
FROM system AS runtime
COPY --from=build /opt/venv /opt/venv
COPY docker/elspeth-sudoers /etc/sudoers.d/elspeth
COPY docker/sidecar.toml.example /etc/elspeth/sidecar.toml
COPY docker/supervisord.conf /etc/supervisor/supervisord.conf
COPY docker/entrypoint.sh /usr/local/bin/entrypoint.sh
COPY docker/orchestrator.sh /usr/local/bin/elspeth-orchestrator
COPY docker/supervisor-listener.sh /usr/local/bin/elspeth-supervisor-listener
COPY docker/sidecar-wait.py /usr/local/bin/elspeth-sidecar-wait
COPY examples/suite-sidecar.yaml /opt/elspeth/examples/suite-sidecar.yaml
COPY examples/service_requests.csv /opt/elspeth/examples/service_requests.csv
# Directories that outlive a run are made here so a fresh named volume copies their owner and
# mode; the entrypoint re-asserts both (a bind mount brings its own).
RUN chown root:root /etc/sudoers.d/elspeth \
    && chmod 0440 /etc/sudoers.d/elspeth \
    && visudo -cf /etc/sudoers.d/elspeth \
    && chmod 0644 /etc/elspeth/sidecar.toml /etc/supervisor/supervisord.conf \
    && chmod 0755 /usr/local/bin/entrypoint.sh /usr/local/bin/elspeth-orchestrator \
        /usr/local/bin/elspeth-supervisor-listener /usr/local/bin/elspeth-sidecar-wait \
    && chmod -R a+rX /opt/elspeth \
    && install -d -m 0700 -o sidecar -g sidecar /var/lib/elspeth-sidecar /var/log/elspeth-sidecar \
    && install -d -m 0700 -o appplugin -g appplugin /var/lib/elspeth-workers \
    && install -d -m 0750 -o appuser -g appuser /workspace \
    && install -d -m 0700 -o root -g root /var/log/supervisor
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    RUST_LOG=info \
    ORCHESTRATOR_ARGS=""
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]

# --- dev: runtime + test dependencies and the test suite, as appuser --------------------------
FROM runtime AS dev
WORKDIR /app
COPY --from=dev-build /opt/venv /opt/venv
COPY --chown=appuser:appuser . /app
# The stamp tells the README's scripts (scripts/demo.sh, scripts/test.sh) that /opt/venv already
# holds this tree's locked dependencies with the test extra: they reuse it, with no network.
RUN chown appuser:appuser /app \
    && ELSPETH_VENV=/opt/venv bash -c 'source /app/scripts/_venv.sh && mark_installed test'
# Plain `pytest -v` runs every tier that can run inside the container; the container tier
# (podman) and benchmark smoke runs are left out. An explicit -m on the command line wins.
ENV PYTEST_ADDOPTS="-m 'not container and not bench'"
# appuser (numeric, so that a platform checking for a non-root uid can verify it).
USER 1000:1000
CMD ["pytest", "-v"]
