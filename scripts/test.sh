#!/usr/bin/env bash
# Runs every test of the workspace. `.ci/run` calls exactly this.
#
# The trainer links libtorch: scripts/libtorch.sh installs PyTorch 2.11.0
# (what tch 0.24 builds against) into a virtual environment cached by
# version under ~/.cache/curate, once. The target dir also lives outside the
# clone, so that reruns on the same machine (and CI runs on a machine that
# built before) reuse compiled dependencies. scripts/pyref.sh adds
# transformers beside that PyTorch, for the tests that compare with it,
# scripts/chromium.sh a headless browser, scripts/s3-server.sh an S3 server
# and scripts/slurm.sh Slurm. The last line totals every test binary's
# results.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/curate/target}
venv=$(scripts/libtorch.sh)
export LIBTORCH_USE_PYTORCH=1 PATH=$venv/bin:$PATH
# transformers, the reference the trainer's Hugging Face tests compare against.
CURATE_PYREF=$(scripts/pyref.sh)
export CURATE_PYREF
# Debian's chromium, in which the report tests open `curate report`'s HTML.
CURATE_CHROMIUM=$(scripts/chromium.sh)
export CURATE_CHROMIUM
# moto's S3 server, which the object-store tests start on a loopback port.
CURATE_S3_PYTHON=$(scripts/s3-server.sh)
export CURATE_S3_PYTHON
# Debian's Slurm and munge, which the Slurm test configures and starts
# itself; where they cannot be installed, that test says so and skips.
if slurm_log=$(scripts/slurm.sh 2>&1); then
    export CURATE_SLURM=1
else
    echo "scripts/slurm.sh failed; the Slurm test will skip: $slurm_log" >&2
    CURATE_SLURM="scripts/slurm.sh failed: $(tail -n 1 <<<"$slurm_log")"
    export CURATE_SLURM
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
