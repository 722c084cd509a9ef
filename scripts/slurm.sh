#!/usr/bin/env bash
# Installs Debian's Slurm (slurmctld, slurmd, the client commands) and
# munge, for the tests that run curate on a real one-node Slurm cluster.
# The tests write their own slurm.conf in a temporary folder and start and
# stop the daemons themselves (tests/cli/slurm.rs); this script only makes
# sure the packages and a munge key are there. Prints nothing on success.
#
#   scripts/slurm.sh
set -euo pipefail
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    echo "installing slurm-wlm and munge (once)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq slurm-wlm munge >&2
fi
# munged refuses to start without a key; the package's postinst makes one,
# but not everywhere (a container without systemd).
if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 400 /etc/munge/munge.key
