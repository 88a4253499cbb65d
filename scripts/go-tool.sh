# Sourced by the scripts that build a Go program from the module proxy (jaeger.sh, helm.sh):
# `go_tool NAME SRC PACKAGE CACHE LDFLAGS` builds PACKAGE in module SRC (pinned by its go.mod
# and go.sum) into CACHE/<key>/NAME, keyed by go.mod, go.sum, the Go version and LDFLAGS, so a
# warm machine pays nothing; prints the binary's path on stdout, progress on stderr.
go_tool() {
  local name=$1 src=$2 package=$3 cache=$4 ldflags=$5
  local key bin start
  key=$( { cat "$src/go.mod" "$src/go.sum"; go version; echo "$ldflags"; } | sha256sum | cut -c1-16)
  bin=$cache/$key/$name
  if [ ! -x "$bin" ]; then
    echo "building $name (cold: minutes on 2 cores; cached afterwards in $cache/$key)" >&2
    mkdir -p "$cache/$key"
    start=$(date +%s)
    (
      cd "$src"
      export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
      go mod download >&2
      go build -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$package"
    )
    mv "$bin.tmp" "$bin"
    echo "built $name in $(( $(date +%s) - start ))s" >&2
  fi
  echo "$bin"
}
