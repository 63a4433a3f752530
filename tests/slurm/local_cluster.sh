#!/usr/bin/env bash
# A real Slurm cluster on this one machine, for the launcher tests: munged, MariaDB +
# slurmdbd (submitit reads job states through sacct), slurmctld and N slurmd daemons acting
# as virtual nodes n1..nN on distinct ports. No systemd, no cgroups. Needs root.
#
#   tests/slurm/local_cluster.sh start    # idempotent; installs the Debian packages if missing
#   tests/slurm/local_cluster.sh stop     # stops exactly the daemons `start` launched
#   tests/slurm/local_cluster.sh status
#
# Every daemon `start` launches is recorded as <name>.pid + <name>.comm under $STATE; `stop`
# signals a recorded PID only while it still runs the recorded program (PIDs get reused), and
# never kills by name. Daemons that were already running are used and left alone.
#   OREAL_SLURM_NODES (2), OREAL_SLURM_CPUS (per node; default: this machine's count, at least 4),
#   OREAL_SLURM_STATE (/run/oreal-slurm), OREAL_SLURM_WAIT_S (90)
set -euo pipefail

NODES=${OREAL_SLURM_NODES:-2}
STATE=${OREAL_SLURM_STATE:-/run/oreal-slurm}
WAIT_S=${OREAL_SLURM_WAIT_S:-90}
CLUSTER=orealci
CONF=/etc/slurm
LOGS=/var/log/slurm
PIDS=/run/slurm

say() { echo "[local-slurm] $*"; }
fail() { say "ERROR: $*" >&2; exit 1; }
until_ok() {  # until_ok <what> <command...>: retry for WAIT_S seconds
    local what=$1; shift
    local end=$(( $(date +%s) + WAIT_S ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || fail "gave up after ${WAIT_S}s waiting for $what"
        sleep 0.2
    done
}
runs() {  # runs <pidfile> <program>: the file names a live, non-zombie process of that program
    local pid
    pid=$( { tr -dc '0-9' <"$1"; } 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ] &&
        [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" != Z ]
}
remember() {  # remember <name> <daemon's pidfile> <program>
    until_ok "$1 to write $2" runs "$2" "$3"
    tr -dc '0-9' <"$2" >"$STATE/$1.pid"
    echo "$3" >"$STATE/$1.comm"
    say "started $1 (pid $(cat "$STATE/$1.pid"))"
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_packages() {
    local missing=()
    for prog in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server; do
        command -v "${prog%%:*}" >/dev/null || missing+=("${prog#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 400 /etc/munge/munge.key
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then say "munged already running"; return; fi
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged
    remember munged /run/munge/munged.pid munged
}

write_slurm_conf() {
    local host cpus mem hw_cpus hw_mem nodes ports
    host=$(hostname -s)
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
    for i in $(seq 1 "$NODES"); do getent hosts "n$i" >/dev/null || echo "127.0.0.1 n$i" >>/etc/hosts; done
    read -r hw_cpus hw_mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
    # at least 4 CPUs per node (over the machine's cores when it has fewer): multi-task layouts
    cpus=${OREAL_SLURM_CPUS:-$(( hw_cpus > 4 ? hw_cpus : 4 ))}
    mem=$(( hw_mem * 9 / 10 / NODES ))
    nodes="n[1-$NODES]"; ports="[17001-$((17000 + NODES))]"
    [ "$NODES" -gt 1 ] || { nodes=n1; ports=17001; }
    mkdir -p "$CONF"
    cat >"$CONF/slurm.conf.new" <<EOF
# written by tests/slurm/local_cluster.sh
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd-%n.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$(( mem / cpus < 1024 ? mem / cpus : 1024 ))
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
$([ "$cpus" -le "$hw_cpus" ] || echo SlurmdParameters=config_overrides)
NodeName=$nodes NodeHostname=$host NodeAddr=127.0.0.1 Port=$ports CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    if cmp -s "$CONF/slurm.conf.new" "$CONF/slurm.conf"; then rm "$CONF/slurm.conf.new"; return; fi
    mv "$CONF/slurm.conf.new" "$CONF/slurm.conf"
    # daemons we started under the old config must pick up the new one
    for f in "$STATE"/slurmd-*.pid "$STATE"/slurmctld.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
    return 0
}

start_accounting() {
    mkdir -p /run/mysqld /var/log/mysql; chown mysql:mysql /run/mysqld /var/log/mysql
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    if mariadb-admin ping >/dev/null 2>&1; then
        say "mariadb already running"
    else
        rm -f /run/mysqld/mysqld.pid
        setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
            --log-error=/var/log/mysql/error.log --innodb-buffer-pool-size=64M </dev/null >/dev/null 2>&1 &
        remember mariadb /run/mysqld/mysqld.pid mariadbd
        until_ok "mariadb" mariadb-admin ping
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'oreal';
                GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    cat >"$CONF/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOGS/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=oreal
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$CONF/slurmdbd.conf"
    if runs "$PIDS/slurmdbd.pid" slurmdbd && port_open 6819; then
        say "slurmdbd already running"
    else
        slurmdbd
        remember slurmdbd "$PIDS/slurmdbd.pid" slurmdbd
        until_ok "slurmdbd on port 6819" port_open 6819
    fi
    sacctmgr -n -P show cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

start_slurm() {
    # a state folder written for another cluster name makes slurmctld refuse to start
    if [ -s /var/spool/slurmctld/clustername ] && [ "$(cat /var/spool/slurmctld/clustername)" != "$CLUSTER" ]; then
        rm -rf /var/spool/slurmctld/*
    fi
    if runs "$PIDS/slurmctld.pid" slurmctld && scontrol ping 2>/dev/null | grep -q UP; then
        say "slurmctld already running"
    else
        slurmctld
        remember slurmctld "$PIDS/slurmctld.pid" slurmctld
        until_ok "slurmctld to answer" bash -c 'scontrol ping | grep -q UP'
    fi
    for i in $(seq 1 "$NODES"); do
        mkdir -p "/var/spool/slurmd/n$i"
        if runs "$PIDS/slurmd-n$i.pid" slurmd; then say "slurmd n$i already running"; continue; fi
        slurmd -N "n$i"
        remember "slurmd-n$i" "$PIDS/slurmd-n$i.pid" slurmd
    done
    local end=$(( $(date +%s) + WAIT_S ))
    until [ "$(sinfo -h -N -o '%T' 2>/dev/null | grep -cx idle)" -eq "$NODES" ]; do
        sinfo -h -N -o '%T' | grep -qE '^(down|drain)' && scontrol update NodeName="n[1-$NODES]" State=RESUME 2>/dev/null || true
        [ "$(date +%s)" -lt "$end" ] || { sinfo -N -l; fail "nodes not idle after ${WAIT_S}s"; }
        sleep 0.2
    done
}

stop_one() {  # stop_one <name>: only if the recorded PID still runs the recorded program
    local name=$1 pid
    [ -f "$STATE/$name.pid" ] || return 0
    pid=$(tr -dc '0-9' <"$STATE/$name.pid")
    if runs "$STATE/$name.pid" "$(cat "$STATE/$name.comm")"; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do runs "$STATE/$name.pid" "$(cat "$STATE/$name.comm")" || break; sleep 0.1; done
        runs "$STATE/$name.pid" "$(cat "$STATE/$name.comm")" && kill -KILL "$pid"
        say "stopped $name (pid $pid)"
    fi
    rm -f "$STATE/$name.pid" "$STATE/$name.comm"
}

stop_all() {
    [ -d "$STATE" ] || { say "nothing recorded in $STATE"; return; }
    if [ -f "$STATE/slurmctld.pid" ]; then
        local jobs
        jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | tr '\n' ' ' || true)
        # shellcheck disable=SC2086
        [ -z "${jobs// /}" ] || timeout 10 scancel $jobs || true
    fi
    for f in "$STATE"/slurmd-*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
    for name in slurmctld slurmdbd mariadb munged; do stop_one "$name"; done
}

[ "$(id -u)" = 0 ] || fail "needs root (it starts system daemons)"
mkdir -p "$STATE" "$LOGS" "$PIDS" /var/spool/slurmctld
case "${1:-}" in
    start) install_packages; start_munge; write_slurm_conf; start_accounting; start_slurm; sinfo -N; say "ready: $NODES nodes" ;;
    stop) stop_all ;;
    status) sinfo -N 2>/dev/null || say "not running"; ls "$STATE" ;;
    *) fail "usage: $0 start|stop|status" ;;
esac
