#!/usr/bin/env bash
# Installs PyTorch 2.11.0 (the libtorch that tch 0.24 builds against) into a
# virtual environment cached by version, and prints that environment's path.
# Also installs Gloo's headers (libgloo-dev) when they are missing.
#
#   venv=$(scripts/libtorch.sh)
#
# The venv lives in ${CURATE_TORCH_CACHE:-~/.cache/curate}/torch-2.11.0; a
# second call finds it and returns at once. The install (about 3.5 minutes
# and 4.6 GB: the CUDA libraries come with the wheel, and libtorch_cpu needs
# some of them even without a GPU) is made in a temporary folder and renamed
# into place, so an interrupted install is never mistaken for a finished one.
set -euo pipefail

# c10d's Gloo process group is compiled into libtorch, but the wheel ships
# no Gloo headers, which the trainer's distributed shim needs: Debian's
# libgloo-dev has them (headers only are used; nothing links its library).
if [[ -z ${CURATE_GLOO_INCLUDE:-} && ! -f /usr/include/gloo/config.h ]]; then
    echo "installing Gloo's headers (Debian's libgloo-dev) for the trainer's c10d shim" >&2
    sudo=
    [[ $(id -u) == 0 ]] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q libgloo-dev >&2 \
        || { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q libgloo-dev >&2; }
fi

version=2.11.0
cache=${CURATE_TORCH_CACHE:-$HOME/.cache/curate}
venv=$cache/torch-$version
if [[ -f $venv/.complete ]]; then
    echo "$venv"
    exit 0
fi
mkdir -p "$cache"
tmp=$cache/.torch-$version.partial.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "installing PyTorch $version into $venv (once; about 4.6 GB)" >&2
# A venv records its own path in its scripts, so it is created at its final
# path's twin and moved only after pip succeeded; `python -m pip` and the
# library folder still work after the move, which is all the build uses.
python3 -m venv "$tmp" >&2
"$tmp/bin/python3" -m pip install --quiet --disable-pip-version-check "torch==$version" >&2
touch "$tmp/.complete"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
echo "$venv"
