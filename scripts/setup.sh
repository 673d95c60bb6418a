#!/usr/bin/env bash
# Install what kvduel needs (system libraries, the default model). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v swift >/dev/null 2>&1; then
    echo "error: Swift is not installed; get it from https://www.swift.org/install/ and run this again" >&2
    exit 1
fi

case "$(uname -s)" in
Linux)
    need=()
    for pkg in libncursesw5-dev pkg-config tmux python3-pip asciinema; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # python3-pip only matters when pip is missing altogether.
    if python3 -m pip --version >/dev/null 2>&1; then
        need=("${need[@]/python3-pip}")
    fi
    need=($(printf '%s\n' "${need[@]}" | grep -v '^$' || true))
    if [ ${#need[@]} -gt 0 ]; then
        echo "setup: installing ${need[*]}"
        sudo_cmd=""
        [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
    fi
    ;;
Darwin)
    # Accelerate ships with macOS; ncurses with wide-character support comes from Homebrew.
    if command -v brew >/dev/null 2>&1 && ! brew list ncurses >/dev/null 2>&1; then
        brew install ncurses
    fi
    ;;
esac

bash scripts/fetch-model.sh
