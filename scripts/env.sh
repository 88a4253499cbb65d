# Sourced by the scripts: shared build settings.
# The cargo target directory lives outside the clone, keyed by the toolchain, so fresh clones
# and CI runs on the same machine reuse earlier builds (cargo itself tracks the sources).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/monitoring-operator/target-$(rustc -V | sha256sum | cut -c1-12)}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
