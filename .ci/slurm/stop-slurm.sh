#!/usr/bin/env bash
# Stop the daemons started by start-slurm.sh, strictly by PID file.
# Usage: stop-slurm.sh [PIDFILE...]   (default: every daemon start-slurm.sh may have started)
stop() { local f=$1; [ -s "$f" ] || return 0; local p; p=$(cat "$f"); kill "$p" 2>/dev/null && echo "stopped $p ($f)";
         for i in $(seq 40); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.25; done; kill -9 "$p" 2>/dev/null; }
if [ $# -gt 0 ]; then
  for f in "$@"; do stop "$f"; done
  exit 0
fi
stop /run/slurm/slurmd.pid
stop /run/slurm/slurmctld.pid
stop /run/slurm/slurmdbd.pid
stop /run/mysqld/mysqld.pid
stop /run/munge/munged.pid
