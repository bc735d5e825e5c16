#!/usr/bin/env bash
# Build the service images (one services/Dockerfile, build arguments SERVICE and PORT) and prove they work:
# each one is started with the same hardening as docker-compose.yml / ECS (read-only root, tmpfs /tmp, no
# capabilities, no-new-privileges), then checked for an answering /health, a non-root process, a passing
# HEALTHCHECK and no compiler; sizes are printed. Services, ports and the environment of the check runs
# come from the contract package (`python3 -m local_system image-services | check-env SERVICE`).
#
#   scripts/images.sh          build + check (what `make images` and CI run)
#   scripts/images.sh build    build only
#   scripts/images.sh naive    build a naive single-stage image, for the size comparison in docs/containers.md
#
# Engine: podman if installed, else a working docker; as root on Debian/Ubuntu podman is installed from apt.
# Base image: the digest-pinned default from services/Dockerfile if it is local or can be pulled; otherwise
# (no registry reachable) a stand-in Python base built from Debian's mirror with debootstrap, cached.
# Environment: BASE_IMAGE (skip the resolution), CONTAINER_ENGINE, IMAGE_REPO, IMAGE_TAG, DEBIAN_MIRROR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKERFILE=${ROOT}/services/Dockerfile
STATE_DIR=${ROOT}/.run/containers
IMAGE_REPO=${IMAGE_REPO:-localhost/microservices}
IMAGE_TAG=${IMAGE_TAG:-dev}
STANDIN_IMAGE=localhost/python-standin:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-60}
CHECK_PREFIX=images-check
START=${SECONDS}

log() { printf '[images %3ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }
banner() {
    printf '\n%s\n' "==================================================================================" >&2
    printf '  %s\n' "$@" >&2
    printf '%s\n\n' "==================================================================================" >&2
}

image_name() { printf '%s/%s:%s' "${IMAGE_REPO}" "$1" "${IMAGE_TAG}"; }

# The contract, read with the system Python (stdlib only; the project's virtualenv is not needed).
from_contract() { (cd "${ROOT}" && python3 -m local_system "$@"); }

# SERVICES (in the contract's order) and PORTS (service -> container port).
load_services() {
    local name port
    SERVICES=()
    declare -gA PORTS=()
    while read -r name port; do
        SERVICES+=("${name}")
        PORTS[${name}]=${port}
    done < <(from_contract image-services)
    ((${#SERVICES[@]} > 0)) || die "no services from: python3 -m local_system image-services"
}

apt_install() {
    if [[ ${EUID} -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing $*; install it (Debian/Ubuntu: sudo apt-get install -y $*) or run this as root"
    fi
    log "installing $* from apt"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # With recommends: the measured podman setup (buildah, catatonit, slirp4netns, uidmap) relies on them.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

choose_engine() {
    if [[ -n ${CONTAINER_ENGINE:-} ]]; then
        ENGINE=${CONTAINER_ENGINE}
    elif command -v podman >/dev/null; then
        ENGINE=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        # A docker CLI without a daemon is common (CI images); podman needs no daemon at all. debootstrap
        # comes along: a machine without an engine rarely has the base image (one apt run, not two).
        apt_install podman runc debootstrap
        ENGINE=podman
    fi
    if [[ ${ENGINE} == podman ]]; then
        # runc, cgroupfs and file events: works without systemd (see containers/containers.conf).
        export CONTAINERS_CONF=${CONTAINERS_CONF:-${ROOT}/containers/containers.conf}
        command -v runc >/dev/null || apt_install runc
    fi
    log "engine: ${ENGINE} ($(${ENGINE} --version))"
}

image_exists() { ${ENGINE} image inspect "$1" >/dev/null 2>&1; }

# The default base is read from the Dockerfile, so the pin lives in one place only.
default_base() {
    local base
    base=$(sed -n 's/^ARG BASE_IMAGE=//p' "${DOCKERFILE}" | head -n 1)
    [[ -n ${base} ]] || die "no 'ARG BASE_IMAGE=' default in services/Dockerfile"
    # podman does not guess registries for short names; docker.io/library/ is what docker assumes.
    local first=${base%%/*}
    if [[ ${base} != */* ]]; then
        base=docker.io/library/${base}
    elif [[ ${first} != *.* && ${first} != *:* && ${first} != localhost ]]; then
        base=docker.io/${base}
    fi
    echo "${base}"
}

build_standin_base() {
    if image_exists "${STANDIN_IMAGE}"; then
        log "reusing cached stand-in base ${STANDIN_IMAGE}"
        return
    fi
    command -v debootstrap >/dev/null || apt_install debootstrap
    [[ ${EUID} -eq 0 ]] || die "building the stand-in base needs root (debootstrap)"
    local rootfs=${STATE_DIR}/standin-rootfs started=${SECONDS}
    rm -rf "${rootfs}"
    mkdir -p "${STATE_DIR}"
    log "debootstrap bookworm from ${DEBIAN_MIRROR} (about a minute)"
    # The host's architecture: the same command gives an arm64 stand-in on an arm64 host.
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "${rootfs}" "${DEBIAN_MIRROR}" >"${STATE_DIR}/debootstrap.log" 2>&1 \
        || die "debootstrap failed, see ${STATE_DIR}/debootstrap.log"
    # Like the official slim images: no apt state, docs or locales; pip may install into venvs only.
    rm -rf "${rootfs}"/var/cache/apt/* "${rootfs}"/var/lib/apt/lists/* "${rootfs}"/usr/share/doc/* \
        "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/info/* "${rootfs}"/usr/share/locale/* \
        "${rootfs}"/usr/lib/python3.*/EXTERNALLY-MANAGED
    tar -C "${rootfs}" -c . | ${ENGINE} import -q --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        - "${STANDIN_IMAGE}" >/dev/null
    rm -rf "${rootfs}"
    log "stand-in base built in $((SECONDS - started)) s"
}

resolve_base() {
    if [[ -n ${BASE_IMAGE:-} ]]; then
        log "base image (from BASE_IMAGE): ${BASE_IMAGE}"
        return
    fi
    local pinned
    pinned=$(default_base)
    if image_exists "${pinned}" || timeout 60 "${ENGINE}" pull -q "${pinned}" >/dev/null 2>&1; then
        BASE_IMAGE=${pinned}
        log "base image: ${BASE_IMAGE}"
        return
    fi
    build_standin_base
    BASE_IMAGE=${STANDIN_IMAGE}
    banner "NO CONTAINER REGISTRY REACHABLE: could not pull ${pinned}" \
        "Building on the STAND-IN base ${STANDIN_IMAGE} (Debian bookworm + its python3 3.11," \
        "made with debootstrap from ${DEBIAN_MIRROR})." \
        "These images prove the Dockerfile; the images to ship are built on the pinned base."
}

build_args() {
    BUILD_ARGS=(--build-arg "BASE_IMAGE=${BASE_IMAGE}")
    if [[ ${ENGINE} == podman ]]; then
        # docker format keeps HEALTHCHECK (OCI drops it).
        BUILD_ARGS+=(--format docker)
    fi
    # pip in the builder trusts the host CA bundle, which holds a TLS-inspecting proxy's CA where there is
    # one. A build secret is mounted for that RUN step only and never stored in a layer.
    if [[ -r ${HOST_CA_BUNDLE} ]]; then
        BUILD_ARGS+=(--secret "id=pip-ca,src=${HOST_CA_BUNDLE}")
    fi
}

build_images() {
    local svc started
    build_args
    for svc in "${SERVICES[@]}"; do
        started=${SECONDS}
        log "building $(image_name "${svc}")"
        # Context is the repository root (the image gets contract/ and services/; .dockerignore keeps the
        # rest out); the images share the layers before the service's virtualenv.
        ${ENGINE} build -q "${BUILD_ARGS[@]}" --build-arg "SERVICE=${svc}" --build-arg "PORT=${PORTS[${svc}]}" \
            -f "${DOCKERFILE}" -t "$(image_name "${svc}")" "${ROOT}" >/dev/null
        log "built $(image_name "${svc}") in $((SECONDS - started)) s"
    done
}

remove_container() {
    # podman's `rm -f` would wait 10 s for SIGTERM; docker's kills at once and has no --time.
    if [[ ${ENGINE} == podman ]]; then
        ${ENGINE} rm -f -t 0 "$1" >/dev/null 2>&1 || true
    else
        ${ENGINE} rm -f "$1" >/dev/null 2>&1 || true
    fi
}

cleanup_containers() {
    local svc
    for svc in "${SERVICES[@]}"; do remove_container "${CHECK_PREFIX}-${svc}"; done
}

wait_healthy() {
    local name=$1 deadline=$((SECONDS + HEALTH_TIMEOUT))
    while ((SECONDS < deadline)); do
        if [[ ${ENGINE} == podman ]]; then
            # No systemd timers here: run the image's own HEALTHCHECK on demand.
            ${ENGINE} healthcheck run "${name}" >/dev/null 2>&1 && return 0
        elif [[ $(${ENGINE} inspect --format '{{.State.Health.Status}}' "${name}") == healthy ]]; then
            return 0
        fi
        [[ $(${ENGINE} inspect --format '{{.State.Running}}' "${name}") == true ]] || return 1
        sleep 1
    done
    return 1
}

# Everything a container needs to start (local_system/images.py); no database or broker is reachable, which
# is the point: /health is liveness only and must answer without them (readiness is /ready).
service_env() {
    local line
    while IFS= read -r line; do
        printf '%s\n' -e "${line}"
    done < <(from_contract check-env "$1")
}

check_image() {
    local svc=$1 name="${CHECK_PREFIX}-$1" port image address uid status user errors
    port=${PORTS[${svc}]}
    image=$(image_name "${svc}")
    user=$(${ENGINE} image inspect --format '{{.Config.User}}' "${image}")
    [[ -n ${user} && ${user%%:*} != 0 && ${user%%:*} != root ]] || die "${image}: USER is '${user}' (root)"
    local -a env_args
    mapfile -t env_args < <(service_env "${svc}")
    ((${#env_args[@]} > 0)) || die "${svc}: no environment from: python3 -m local_system check-env ${svc}"
    # docker runs the image's HEALTHCHECK on a timer: a short interval keeps the wait short.
    local -a health_args=()
    [[ ${ENGINE} == podman ]] || health_args=(--health-interval 2s)
    # podman without systemd complains on stderr that it cannot schedule timed health checks: only show
    # stderr when the start itself fails (checks run on demand below).
    if ! errors=$(${ENGINE} run -d --name "${name}" --read-only --tmpfs /tmp:rw,size=64m --cap-drop ALL \
        --security-opt no-new-privileges -p "127.0.0.1::${port}" "${health_args[@]}" "${env_args[@]}" \
        "${image}" 2>&1 >/dev/null)
    then
        die "${image}: could not start: ${errors}"
    fi
    if ! wait_healthy "${name}"; then
        ${ENGINE} logs --tail 40 "${name}" >&2 || true
        if [[ $(${ENGINE} inspect --format '{{.State.Running}}' "${name}") != true ]]; then
            die "${image}: the container exited during start-up (logs above)"
        fi
        die "${image}: HEALTHCHECK did not pass within ${HEALTH_TIMEOUT} s (logs above)"
    fi
    address=$(${ENGINE} port "${name}" "${port}" | head -n 1)
    status=$(python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).status)' "http://${address}/health") \
        || die "${image}: /health on ${address} did not answer"
    [[ ${status} == 200 ]] || die "${image}: /health answered ${status}"
    uid=$(${ENGINE} exec "${name}" python -c 'import os; print(os.getuid())')
    [[ ${uid} != 0 ]] || die "${image}: the service runs as root"
    ${ENGINE} exec "${name}" sh -c '! command -v gcc && ! command -v cc' >/dev/null \
        || die "${image}: a compiler is present in the final image"
    # The SDK's models were pruned to Secrets Manager's (services/Dockerfile): its client must still load.
    ${ENGINE} exec "${name}" python -c 'import boto3; boto3.client("secretsmanager", region_name="eu-west-1")' \
        || die "${image}: the Secrets Manager client does not load (pruned SDK models?)"
    # A read-only root hides mistakes that do not stop the process (e.g. a socket or cache under $HOME).
    if ${ENGINE} logs "${name}" 2>&1 | grep -E 'Read-only file system|Permission denied|Traceback' >&2; then
        die "${image}: errors in the log under a read-only root filesystem (above)"
    fi
    # SIGTERM must reach gunicorn (exec-form CMD, PID 1) and end in a clean exit well before a SIGKILL.
    ${ENGINE} stop -t 30 "${name}" >/dev/null 2>&1
    status=$(${ENGINE} inspect --format '{{.State.ExitCode}}' "${name}")
    [[ ${status} == 0 ]] || die "${image}: exit code ${status} after SIGTERM (expected a graceful 0)"
    remove_container "${name}"
    log "ok ${image}: /health 200 from the host, HEALTHCHECK passes, uid ${uid}, read-only root," \
        "no compiler, Secrets Manager client loads, graceful stop"
}

print_sizes() {
    local svc image bytes
    printf '\n%-45s %10s\n' IMAGE SIZE
    for svc in "${SERVICES[@]}"; do
        image=$(image_name "${svc}")
        bytes=$(${ENGINE} image inspect --format '{{.Size}}' "${image}")
        printf '%-45s %7d MB\n' "${image}" "$((bytes / 1000000))"
    done
    printf 'base: %s\n\n' "${BASE_IMAGE}"
}

# What multi-stage saves: the same service built the naive way (one stage, pip and setuptools left in the
# venv, root user, the whole context copied). Written to .run/, never linted or shipped: only measured.
# Same context as the real build (the repository root through .dockerignore).
build_naive() {
    local dockerfile=${STATE_DIR}/Dockerfile.naive image="${IMAGE_REPO}/inventory-naive:${IMAGE_TAG}" bytes
    mkdir -p "${STATE_DIR}"
    # shellcheck disable=SC2016,SC1003 # Dockerfile text: $VARS and the line continuation are literal.
    printf '%s\n' 'ARG BASE_IMAGE' 'FROM ${BASE_IMAGE}' 'WORKDIR /app' 'COPY . /app' \
        'RUN --mount=type=secret,id=pip-ca if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \' \
        '    && python3 -m venv /opt/venv && /opt/venv/bin/pip install -r services/inventory/requirements.txt' \
        'ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/app/services:/app' \
        'CMD ["gunicorn", "--config", "python:common.gunicorn_config", "inventory:create_app()"]' \
        >"${dockerfile}"
    ${ENGINE} build -q "${BUILD_ARGS[@]}" -f "${dockerfile}" -t "${image}" "${ROOT}" >/dev/null
    bytes=$(${ENGINE} image inspect --format '{{.Size}}' "${image}")
    printf '%-45s %7d MB  (naive single stage)\n' "${image}" "$((bytes / 1000000))"
}

main() {
    local mode=${1:-check}
    case ${mode} in check | build | naive) ;; *) die "usage: $0 [check|build|naive]" ;; esac
    load_services
    choose_engine
    resolve_base
    build_images
    if [[ ${mode} == naive ]]; then
        build_naive
    elif [[ ${mode} == check ]]; then
        trap cleanup_containers EXIT
        cleanup_containers
        local svc
        for svc in "${SERVICES[@]}"; do check_image "${svc}"; done
    fi
    print_sizes
    log "done in $((SECONDS - START)) s"
}

main "$@"
