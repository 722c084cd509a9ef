#!/usr/bin/env bash
# Installs moto's S3 server (a real S3 API over HTTP, from PyPI) into a
# virtual environment cached by its requirements, and prints its python.
# The S3 tests start `python -m moto.server` on a loopback port themselves
# and stop it when they end.
#
#   python=$(scripts/s3-server.sh)
#
# A test tool, never a dependency of the build: the venv lives in
# ${CURATE_TORCH_CACHE:-~/.cache/curate}/s3-server-HASH, made under a
# temporary name and renamed into place once pip has succeeded.
set -euo pipefail
requirements="moto[server,s3]==5.2.5"
cache=${CURATE_TORCH_CACHE:-$HOME/.cache/curate}
key=$(printf '%s' "$requirements" | sha256sum | cut -c1-12)
venv=$cache/s3-server-$key
if [[ -f $venv/.complete ]]; then
    echo "$venv/bin/python3"
    exit 0
fi
mkdir -p "$cache"
tmp=$cache/.s3-server-$key.partial.$$
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "installing the S3 test server ($requirements) into $venv (once)" >&2
python3 -m venv "$tmp" >&2
# shellcheck disable=SC2086
"$tmp/bin/python3" -m pip install --quiet --disable-pip-version-check $requirements >&2
touch "$tmp/.complete"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
for old in "$cache"/s3-server-*; do
    [[ $old == "$venv" ]] || rm -rf "$old"
done
echo "$venv/bin/python3"
