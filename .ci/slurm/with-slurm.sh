#!/usr/bin/env bash
# Run a command with a single-node SLURM up and a snakemake that has the SLURM executor plugin.
#
# Usage (from anywhere, as root on Debian):  bash .ci/slurm/with-slurm.sh CMD [ARGS...]
#   e.g.  bash .ci/slurm/with-slurm.sh python -m pytest
#
# 1. starts munged, slurmctld and slurmd with start-slurm.sh (installs the Debian packages if missing);
# 2. makes a SEPARATE virtualenv (default <repo>/.venv-slurm, or $NEURODEID_SLURM_VENV) with
#    neurodeid[workflow] and snakemake-executor-plugin-slurm: the plugin must stay out of the test
#    venv, where it makes every snakemake call run `scontrol` (about 9 s lost without a controller);
# 3. exports NEURODEID_SLURM_SNAKEMAKE=<that venv>/bin/snakemake (tests/test_slurm.py uses it);
# 4. runs CMD and returns its exit status;
# 5. always (exit, error, Ctrl-C, TERM) stops the daemons that step 1 started, by their PID files.
#    Daemons that were already running before are left alone.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VENV=${NEURODEID_SLURM_VENV:-$REPO/.venv-slurm}
PIDFILES="/run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid"

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# PID files of daemons already running: not ours to stop
preexisting=""
for f in $PIDFILES; do alive "$f" && preexisting="$preexisting $f"; done

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local ours=""
  for f in $PIDFILES; do
    case " $preexisting " in *" $f "*) ;; *) ours="$ours $f" ;; esac
  done
  # shellcheck disable=SC2086
  [ -n "$ours" ] && bash "$HERE/stop-slurm.sh" $ours || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "with-slurm: starting SLURM" >&2
bash "$HERE/start-slurm.sh" >&2

if [ ! -x "$VENV/bin/python" ]; then
  echo "with-slurm: creating $VENV" >&2
  python3 -m venv "$VENV"
fi
# Installed every time (quick when nothing changed): a venv made before a dependency was
# added to pyproject.toml would otherwise run the jobs without it.
echo "with-slurm: installing neurodeid[workflow] + snakemake-executor-plugin-slurm into $VENV" >&2
"$VENV/bin/pip" install -q -e "$REPO[workflow]" snakemake-executor-plugin-slurm >&2
export NEURODEID_SLURM_SNAKEMAKE="$VENV/bin/snakemake"
echo "with-slurm: NEURODEID_SLURM_SNAKEMAKE=$NEURODEID_SLURM_SNAKEMAKE" >&2

"$@"
