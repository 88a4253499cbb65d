#!/usr/bin/env bash
# Print the path of a `promtool` binary on stdout, installing it first if it is missing.
#
# Lookup order: $PROMTOOL (if executable), `promtool` on PATH, /usr/bin/promtool. When none is
# found, the Debian package `prometheus` (which ships /usr/bin/promtool) is installed with apt.
# That needs root (or passwordless sudo). A policy-rc.d that exits 101 is put in place for the
# duration of the install so the prometheus service is not started; an existing policy-rc.d is
# left untouched, and only a file this script created is removed again.
#
# Progress goes to stderr; stdout carries only the path. Fast and side-effect free when promtool
# is already there.
set -euo pipefail

log() { printf 'promtool.sh: %s\n' "$*" >&2; }

find_promtool() {
  if [[ -n ${PROMTOOL:-} && -x ${PROMTOOL} ]]; then
    printf '%s\n' "$PROMTOOL"
  elif command -v promtool >/dev/null 2>&1; then
    command -v promtool
  elif [[ -x /usr/bin/promtool ]]; then
    printf '%s\n' /usr/bin/promtool
  else
    return 1
  fi
}

if find_promtool; then
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  log "promtool not found and not running as root (no passwordless sudo either)."
  log "Install it yourself (Debian/Ubuntu: apt-get install prometheus) or set PROMTOOL=/path/to/promtool."
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  log "promtool not found and apt-get is unavailable; set PROMTOOL=/path/to/promtool."
  exit 1
fi

# Serialise concurrent callers (parallel test binaries, two shells) on one install.
lock=${TMPDIR:-/tmp}/monitoring-operator-promtool.lock
if command -v flock >/dev/null 2>&1; then
  exec 9>"$lock"
  flock 9
  # Another caller may have finished the install while we waited.
  if find_promtool; then
    exit 0
  fi
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
  if [[ $created_policy -eq 1 ]]; then
    "${as_root[@]}" rm -f "$policy"
  fi
}
trap cleanup EXIT

if [[ ! -e $policy ]]; then
  log "installing a temporary $policy so the prometheus service is not started"
  printf '#!/bin/sh\n# Temporary, from monitoring-operator scripts/promtool.sh.\nexit 101\n' |
    "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 0755 "$policy"
  created_policy=1
fi

log "promtool not found; installing the Debian package 'prometheus' (ships /usr/bin/promtool)"
log "apt-get update"
"${as_root[@]}" apt-get update -qq >&2
log "apt-get install prometheus"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends prometheus >&2

if ! find_promtool; then
  log "the prometheus package was installed but no promtool binary was found"
  exit 1
fi
log "installed: $(/usr/bin/promtool --version 2>&1 | head -n1)"
