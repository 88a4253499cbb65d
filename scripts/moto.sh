#!/usr/bin/env bash
# Install (or reuse) moto's S3-compatible server from PyPI into a virtualenv cached outside the
# repository, keyed by the pinned version and the Python version. Prints the venv's bin/ on
# stdout (moto_server, and a python with boto3); progress goes to stderr.
set -euo pipefail
version=5.2.5
venv=${MOTO_CACHE:-$HOME/.cache/monitoring-operator/moto-$version-py$(python3 -V | tr -cd '0-9.')}
if [ ! -f "$venv/.complete" ]; then
  echo "installing moto[server]==$version into $venv" >&2
  rm -rf "$venv"
  # A venv's scripts name its path: it is built where it stays.
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$version" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin"
