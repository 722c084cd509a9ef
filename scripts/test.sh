#!/usr/bin/env bash
# Runs every test of the workspace. `.ci/run` calls exactly this.
#
# The target dir lives outside the clone so that reruns on the same machine
# (and CI runs on a machine that built before) reuse compiled dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
cargo test --workspace --locked
