#!/bin/sh
# Installs the system packages sparq builds against (a C++ compiler, make, python3, OpenBLAS) on
# Debian/Ubuntu: directly as root, through sudo where that needs no password, and otherwise prints the
# exact command to run. Safe to run again: it installs only what is missing.
set -eu
missing=""
dpkg -s libopenblas-dev >/dev/null 2>&1 || missing="$missing libopenblas-dev"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
if [ -z "$missing" ]; then
  echo "sparq setup: the system packages are installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "sparq setup: missing$missing, and this is not a Debian/Ubuntu system; install a C++ compiler, make, python3 and OpenBLAS with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run="sudo"
else
  echo "sparq setup: missing$missing; run: sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "sparq setup: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$run apt-get update -qq
# shellcheck disable=SC2086
$run apt-get install -y -qq --no-install-recommends $missing
