#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the real-cluster tests (tests/test_slurm_cluster.py)
# and for trying `snndelay sweep --launcher slurm` by hand. Needs root and Debian's packages
# slurmctld, slurmd, slurm-client and munge (`install` fetches them with apt-get).
#
#   bash scripts/slurm_cluster.sh install        # apt-get install the packages (once)
#   bash scripts/slurm_cluster.sh start DIR      # munged + slurmctld + slurmd, config in DIR
#   export SLURM_CONF=DIR/slurm.conf             # what sbatch, squeue, scancel then use
#   bash scripts/slurm_cluster.sh stop DIR       # stops every daemon it started
#
# The node has this machine's CPUs and its memory less 2 GiB, one partition `debug`, no
# accounting (sacct answers "accounting storage is disabled"; snndelay reads squeue instead).
# The daemons listen on ports 46817/46818 of this machine only.
set -euo pipefail
cmd=${1:-}
dir=${2:-}

need_dir() {
    if [ -z "$dir" ]; then echo "usage: $0 start|stop DIR" >&2; exit 2; fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
}

case "$cmd" in
install)
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
        && command -v munged >/dev/null; then
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
    ;;
start)
    need_dir
    for tool in slurmctld slurmd sbatch munged; do
        command -v "$tool" >/dev/null || { echo "$tool not installed (run: $0 install)" >&2; exit 3; }
    done
    mkdir -p "$dir/state" "$dir/spool" "$dir/log"
    # munge: its own key and socket, so a system munged (if any) is left alone; in a folder
    # of its own that the munge user can reach (DIR may sit under a private temporary folder).
    mdir=$(mktemp -d /tmp/snndelay-munge.XXXXXX)
    echo "$mdir" > "$dir/munge.dir"
    dd if=/dev/urandom of="$mdir/munge.key" bs=1 count=1024 status=none
    chown -R munge:munge "$mdir"
    chmod 700 "$mdir"
    chmod 400 "$mdir/munge.key"
    sock="$mdir/munge.socket"
    if ! runuser -u munge -- /usr/sbin/munged --force --key-file="$mdir/munge.key" \
        --socket="$sock" --pid-file="$mdir/munged.pid" --log-file="$mdir/munged.log" \
        --seed-file="$mdir/munged.seed"; then
        echo "munged did not start (see $mdir/munged.log)" >&2
        exit 3
    fi
    host=$(hostname -s)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
    cat > "$dir/slurm.conf" <<EOF
ClusterName=snndelaytest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=46817
SlurmdPort=46818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
KillWait=10
MinJobAge=30
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    export SLURM_CONF="$dir/slurm.conf"
    slurmctld -f "$SLURM_CONF"
    slurmd -f "$SLURM_CONF"
    for _ in $(seq 60); do
        if sinfo -h -o %T 2>/dev/null | grep -q idle; then
            echo "SLURM_CONF=$SLURM_CONF"
            exit 0
        fi
        sleep 1
    done
    echo "the node did not become idle in 60 s (logs in $dir/log)" >&2
    exit 3
    ;;
stop)
    need_dir
    mdir=$(cat "$dir/munge.dir" 2>/dev/null || true)
    # Cancel every job first and let the node clean up: job steps (slurmstepd) outlive slurmd.
    if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF="$dir/slurm.conf" scancel --full --quiet $(SLURM_CONF="$dir/slurm.conf" \
            squeue -h -o %A 2>/dev/null) 2>/dev/null || true
        for _ in $(seq 30); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %A 2>/dev/null)" ] && break
            sleep 1
        done
    fi
    pids=("$dir/slurmd.pid" "$dir/slurmctld.pid")
    [ -n "$mdir" ] && pids+=("$mdir/munged.pid")
    for pid in "${pids[@]}"; do
        if [ -s "$pid" ]; then
            kill "$(cat "$pid")" 2>/dev/null || true
        fi
    done
    # slurmd's job steps (slurmstepd) end with their jobs; wait until the daemons are gone.
    for _ in $(seq 30); do
        alive=0
        for pid in "${pids[@]}"; do
            if [ -s "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null; then alive=1; fi
        done
        if [ "$alive" = 0 ]; then
            # Steps still left (a job that ignored its cancel): they carry this SLURM_CONF.
            for env in /proc/[0-9]*/environ; do
                pid=${env#/proc/}; pid=${pid%/environ}
                if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ] && \
                    tr '\0' '\n' < "$env" 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf"; then
                    kill -9 "$pid" 2>/dev/null || true
                fi
            done
            [ -n "$mdir" ] && rm -rf "$mdir"
            exit 0
        fi
        sleep 1
    done
    echo "some SLURM daemon did not stop" >&2
    exit 1
    ;;
*)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
