# Shared paths and helpers for the rloop scripts. Sourced, not run.
# shellcheck shell=bash
CACHE=${RLOOP_CACHE:-$HOME/.cache/rloop}
BINDGEN_ROOT=$CACHE/bindgen-0.73.2
VENV=$CACHE/venv
LLVM_BIN=/usr/lib/llvm-19/bin
LLVM_LIB=/usr/lib/llvm-19/lib
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export PATH="$LLVM_BIN:$BINDGEN_ROOT/bin:$VENV/bin:$HOME/.cargo/bin:$PATH"
export LIBCLANG_PATH=$LLVM_LIB

# The unpacked kernel source (newest Debian version in the cache).
ksrc() {
    local d
    d=$(ls -d "$CACHE"/src/linux-source-7.3_*/ 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || { echo "no kernel source: run scripts/setup" >&2; return 1; }
    echo "${d%/}"
}
