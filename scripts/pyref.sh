#!/usr/bin/env bash
# Installs the Python references the tests compare against (Hugging Face
# transformers, PEFT, lm-evaluation-harness, fastText and Polars, on the PyTorch of
# scripts/libtorch.sh) into a virtual environment cached by its
# requirements, and prints its python.
#
#   python=$(scripts/pyref.sh)
#
# The reference is a test tool, never a dependency of the build: the venv
# lives in ${CURATE_TORCH_CACHE:-~/.cache/curate}/pyref-HASH and reuses the
# torch venv's packages through a .pth file instead of a second 4.6 GB
# install. As scripts/libtorch.sh does, it is made under a temporary name
# and renamed into place once pip has succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
torch_venv=$(scripts/libtorch.sh)
requirements="transformers==5.24.0 safetensors==0.8.0 jinja2==3.1.6 numpy==2.4.6 lm-eval==0.4.13 accelerate==1.15.0 peft==0.21.2 fasttext-numpy2-wheel==0.9.2 polars==2.1.0"
cache=${CURATE_TORCH_CACHE:-$HOME/.cache/curate}
key=$(printf '%s %s' "$requirements" "$torch_venv" | sha256sum | cut -c1-12)
venv=$cache/pyref-$key
if [[ -f $venv/.complete ]]; then
    echo "$venv/bin/python3"
    exit 0
fi
tmp=$cache/.pyref-$key.partial.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "installing the Python reference ($requirements) into $venv (once)" >&2
python3 -m venv "$tmp" >&2
site=$("$tmp/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
torch_site=$("$torch_venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$torch_site" >"$site/curate-torch.pth"
# shellcheck disable=SC2086
"$tmp/bin/python3" -m pip install --quiet --disable-pip-version-check $requirements >&2
touch "$tmp/.complete"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
# Environments of older requirements are not used again.
for old in "$cache"/pyref-*; do
    [[ $old == "$venv" ]] || rm -rf "$old"
done
echo "$venv/bin/python3"
