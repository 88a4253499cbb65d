#!/usr/bin/env bash
# License, ban and source checks of the dependency graph (cargo-deny, from crates.io; installed
# once into ~/.cargo/bin). Advisories are not checked: their database is fetched from GitHub,
# which this workplace's network does not reach.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $version$"; then
  echo "installing cargo-deny $version (cold: ~4 min on 2 cores)" >&2
  cargo install --locked --quiet cargo-deny --version "$version"
fi
cargo deny --log-level error check licenses bans sources
