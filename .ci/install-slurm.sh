#!/usr/bin/env bash
# Install a single-node Slurm (controller, node daemon, client tools) and munge, for tests/test_slurm.py.
# Idempotent: does nothing when everything is already installed. Debian/Ubuntu (apt); run as root or with sudo.
# It only installs: tests/slurm_cluster.py writes the configuration and starts the daemons in a temp dir, so
# nothing here is configured or started (the packages' own services stay stopped where there is no systemd).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
BINARIES=(slurmctld slurmd sbatch squeue sinfo scontrol munged)

have_all() {
    local b
    for b in "${BINARIES[@]}"; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || return 1
    done
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

# (sinfo --version needs a slurm.conf, so ask dpkg.)
slurm_version() { dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo "?"; }

if have_all; then
    echo "install-slurm: already installed (slurm $(slurm_version))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-slurm: no apt-get here; install Slurm (slurmctld, slurmd, client tools) and munge yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo -n"  # never prompt: CI has no terminal
fi

# (env, not export: sudo would drop the variable)
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${PACKAGES[@]}" >/dev/null

have_all || { echo "install-slurm: packages installed but binaries missing" >&2; exit 1; }
echo "install-slurm: installed slurm $(slurm_version)"
