#!/usr/bin/env bash
# A throwaway single-node Slurm cluster (munge, MariaDB + slurmdbd, slurmctld, slurmd) for CI
# and for trying profiles/slurm on one machine. It does nothing unless called:
#
#   .ci/slurm.sh install       apt-get the Debian packages (root; ~10-30 s)
#   .ci/slurm.sh start DIR     start a cluster whose every file lives in DIR (root);
#                              prints the pids it started; partition `debug`, account `ci`
#   .ci/slurm.sh stop DIR      cancel its jobs, stop its daemons by pid (reverse order)
#   .ci/slurm.sh status DIR    sinfo and squeue of that cluster
#
# Exit status of `start`: 0 up; 3 this machine cannot host it (not root, packages missing, no
# /sys/fs/cgroup, /etc/slurm/slurm.conf belongs to someone else); anything else: a failure.
# SLURM_ACCOUNTING=0 skips MariaDB and slurmdbd (then sacct does not work: give the executor
# `slurm-status-command: squeue`). Recipe and pitfalls: docs/clusters.md.
set -euo pipefail

PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server-core mariadb-client-core)
COMMANDS=(munged munge slurmctld slurmd slurmdbd sinfo squeue sacct sacctmgr scancel
    mariadbd mariadb mariadb-install-db setpriv)
# the Slurm executor plugin's jobstep strips every SLURM_* variable (SLURM_CONF too) before its
# inner srun, so the config has to be where Slurm looks by default
SYSTEM_CONF=/etc/slurm/slurm.conf
MARKER=.polyneuron-slurm-cluster

die() {
    echo "slurm.sh: $2" >&2
    exit "$1"
}

wait_for() { # seconds description command...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die 1 "timed out after ${seconds}s waiting for $what"
        sleep 0.2
    done
}

free_ports() { # n: print n free TCP ports on the loopback interface
    python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

cmd_install() {
    [[ $EUID -eq 0 ]] || die 3 "install needs root"
    command -v apt-get >/dev/null || die 3 "no apt-get on this machine"
    if ! compgen -G "/var/lib/apt/lists/*Packages*" >/dev/null; then
        apt-get update # a fresh container has no package lists yet
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
}

check_prerequisites() {
    [[ $EUID -eq 0 ]] || die 3 "starting a cluster needs root (it runs munged as user munge)"
    local missing=()
    for cmd in "${COMMANDS[@]}"; do
        [[ $cmd == mariadb* && ${SLURM_ACCOUNTING:-1} == 0 ]] && continue
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) ||
        die 3 "missing commands: ${missing[*]} (run: .ci/slurm.sh install)"
    id munge >/dev/null 2>&1 || die 3 "no user munge (run: .ci/slurm.sh install)"
    # slurmd 22.05 refuses to start unless something is mounted there
    mountpoint -q /sys/fs/cgroup || die 3 "nothing is mounted at /sys/fs/cgroup (slurmd needs it)"
    if [[ -L $SYSTEM_CONF ]]; then
        local target
        target=$(readlink "$SYSTEM_CONF")
        if [[ -e $target ]]; then
            local owner
            owner=$(dirname "$(dirname "$target")")
            [[ -e $owner/$MARKER ]] ||
                die 3 "$SYSTEM_CONF points at $target, not a test cluster's; refusing to replace it"
            [[ ! -e $owner/pids ]] ||
                die 3 "a test cluster is running in $owner (stop it: .ci/slurm.sh stop $owner)"
        elif [[ $target != */etc/slurm.conf ]]; then
            die 3 "$SYSTEM_CONF is a dangling link to $target, not a test cluster's"
        fi
        rm -f "$SYSTEM_CONF" # a stopped or vanished test cluster's link
    elif [[ -e $SYSTEM_CONF ]]; then
        die 3 "$SYSTEM_CONF exists (a real Slurm config?); refusing to replace it"
    fi
}

claim_system_conf() {
    # ln without -f fails if the link exists: two clusters starting at once cannot both win
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$SLURM_CONF" "$SYSTEM_CONF" 2>/dev/null ||
        die 3 "$SYSTEM_CONF appeared meanwhile: another test cluster is starting"
}

record() { # name pid
    echo "$1 $2" >>"$DIR/pids"
    echo "started $1 (pid $2)"
}

cmd_start() {
    check_prerequisites
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    [[ ! -e $DIR/pids ]] || die 1 "$DIR already holds a cluster (stop it first)"
    mkdir -p "$DIR"/{etc,log,run,spool/ctld,spool/d,munge,munge-run}
    touch "$DIR/$MARKER" "$DIR/pids" # pids first: a cluster starting here counts as running
    export SLURM_CONF=$DIR/etc/slurm.conf
    claim_system_conf
    chmod 755 "$DIR" "$DIR/log"
    setpriv --reuid=munge --regid=munge --init-groups test -x "$DIR" ||
        die 1 "user munge cannot reach $DIR: put it where every parent is searchable (e.g. /tmp)"
    # munged runs as user munge and checks that only it can read its key
    local socket=$DIR/munge-run/munge.socket
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
    touch "$DIR/log/munged.log"
    chown munge:munge "$DIR/munge" "$DIR/munge/munge.key" "$DIR/munge-run" "$DIR/log/munged.log"
    chmod 700 "$DIR/munge"
    chmod 400 "$DIR/munge/munge.key"
    chmod 755 "$DIR/munge-run"
    setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
        --socket="$socket" --key-file="$DIR/munge/munge.key" \
        --log-file="$DIR/log/munged.log" --pid-file="$DIR/munge-run/munged.pid" \
        --seed-file="$DIR/munge/munged.seed" >>"$DIR/log/munged.out" 2>&1 &
    record munged $!
    wait_for 10 munged bash -c "munge -n --socket='$socket' | unmunge --socket='$socket'"

    local ctld_port slurmd_port dbd_port db_port
    read -r ctld_port slurmd_port dbd_port db_port <<<"$(free_ports 4)"
    local node mem_mb
    # the node exactly as slurmd sees it (a larger CPU count would drain it), memory at 90%
    node=$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//')
    mem_mb=$(($(slurmd -C | head -1 | sed 's/.*RealMemory=\([0-9]*\).*/\1/') * 9 / 10))

    local accounting=${SLURM_ACCOUNTING:-1} acct_lines
    if [[ $accounting == 1 ]]; then
        acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$socket
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
    else
        acct_lines="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    fi
    cat >"$DIR/etc/slurm.conf" <<EOF
# single-node test cluster written by .ci/slurm.sh
ClusterName=ci
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
SchedulerType=sched/backfill
ReturnToService=2
InactiveLimit=0
KillWait=5
MinJobAge=300
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
$acct_lines
NodeName=localhost NodeAddr=127.0.0.1 $node RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    echo "export SLURM_CONF=$SLURM_CONF" >"$DIR/env"

    if [[ $accounting == 1 ]]; then
        local db_pass
        db_pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
        cat >"$DIR/etc/db-init.sql" <<EOF
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
        mariadb-install-db --no-defaults --user=root --datadir="$DIR/mysql" --skip-test-db \
            --auth-root-authentication-method=socket \
            >"$DIR/log/mariadb-install.log" 2>&1 || die 1 "mariadb-install-db failed: $DIR/log"
        mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --bind-address=127.0.0.1 \
            --port="$db_port" --socket="$DIR/run/mysqld.sock" --pid-file="$DIR/run/mysqld.pid" \
            --log-error="$DIR/log/mariadb.log" --skip-log-bin --innodb-buffer-pool-size=64M \
            >>"$DIR/log/mariadb.out" 2>&1 &
        record mariadbd $!
        wait_for 30 MariaDB mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -e "SELECT 1"
        mariadb --no-defaults --socket="$DIR/run/mysqld.sock" <"$DIR/etc/db-init.sql"
        # slurmdbd reads slurmdbd.conf next to $SLURM_CONF and insists on mode 600
        cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$socket
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
EOF
        chmod 600 "$DIR/etc/slurmdbd.conf"
        slurmdbd -D >>"$DIR/log/slurmdbd.out" 2>&1 &
        record slurmdbd $!
        wait_for 30 slurmdbd sacctmgr -n list cluster
        sacctmgr -i add cluster ci >/dev/null
        sacctmgr -i add account ci Description=ci Organization=ci >/dev/null
        sacctmgr -i add user root account=ci DefaultAccount=ci >/dev/null
    fi

    slurmctld -D -i >>"$DIR/log/slurmctld.out" 2>&1 &
    record slurmctld $!
    wait_for 30 slurmctld scontrol ping
    slurmd -D -N localhost >>"$DIR/log/slurmd.out" 2>&1 &
    record slurmd $!
    wait_for 30 "the node to be idle" bash -c "sinfo -h -N -o '%T' | grep -qx idle"
    echo "cluster up: SLURM_CONF=$SLURM_CONF (partition debug, account ci)"
}

alive() { # pid name: the process still runs the binary we started
    [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" | grep -q "$2"
}

release_system_conf() {
    if [[ -L $SYSTEM_CONF && "$(readlink "$SYSTEM_CONF")" == "$SLURM_CONF" ]]; then
        rm -f "$SYSTEM_CONF"
    fi
}

cmd_stop() {
    [[ -d $DIR ]] || die 1 "no such folder: $DIR"
    DIR=$(cd "$DIR" && pwd)
    export SLURM_CONF=$DIR/etc/slurm.conf
    if [[ ! -e $DIR/pids ]]; then
        release_system_conf
        echo "no cluster running in $DIR"
        return 0
    fi
    # jobs still running would outlive slurmd in their slurmstepd: cancel them by id first
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086
        scancel $jobs || true
        local deadline=$((SECONDS + 20))
        while [[ -n "$(squeue -h -o %i 2>/dev/null || true)" ]] && ((SECONDS < deadline)); do
            sleep 0.5
        done
    fi
    local name pid
    while read -r name pid; do
        if alive "$pid" "$name"; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                alive "$pid" "$name" || break
                sleep 0.2
            done
            if alive "$pid" "$name"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
            echo "stopped $name (pid $pid)"
        fi
    done < <(tac "$DIR/pids")
    mv "$DIR/pids" "$DIR/pids.stopped"
    release_system_conf
}

cmd_status() {
    export SLURM_CONF=$DIR/etc/slurm.conf
    sinfo
    squeue
}

case ${1:-} in
install) cmd_install ;;
start | stop | status)
    [[ $# -eq 2 ]] || die 2 "usage: $0 $1 DIR"
    DIR=$2
    "cmd_$1"
    ;;
*) die 2 "usage: $0 install | start DIR | stop DIR | status DIR" ;;
esac
