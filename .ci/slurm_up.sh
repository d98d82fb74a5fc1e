#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (as root), for the tests in tests/slurm/.
#
#   apt-get install -y slurmctld slurmd slurm-client munge   # once; this script installs nothing
#   .ci/slurm_up.sh                                          # idempotent: a running cluster is kept
#
# munged runs as user munge with /etc/munge/munge.key; slurmctld and slurmd run directly (no
# systemd) with a slurm.conf naming this host as the one node (CPUs = nproc) of a default
# partition "debug". Accounting is off (submitit's sacct calls fail harmlessly). Exit 0 when
# `sinfo` shows the node up; otherwise print why and exit 1.
set -uo pipefail

CONF=/etc/slurm/slurm.conf
MARK='# written by gear .ci/slurm_up.sh'
LOG=/var/log/slurm
HOST=$(hostname -s)

fail() { echo "slurm_up: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (it starts munged, slurmctld and slurmd)"
missing=()
for bin in munged slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
done
[ ${#missing[@]} = 0 ] \
    || fail "missing ${missing[*]}: apt-get install -y slurmctld slurmd slurm-client munge"
export PATH="$PATH:/usr/sbin"

node_state() { sinfo -h -n "$HOST" -o '%T' 2>/dev/null | head -n1 | tr -d '*~#'; }
node_up() {
    case "$(node_state)" in idle|mixed|allocated|completing) return 0;; *) return 1;; esac
}

if node_up; then
    echo "slurm_up: cluster already up ($HOST $(node_state))"
    exit 0
fi

# --- munge: a key owned by munge, munged running as munge
id munge >/dev/null 2>&1 || fail "no user munge (is the munge package installed?)"
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none \
        || fail "cannot write /etc/munge/munge.key"
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged || fail "munged did not start; see /var/log/munge/munged.log"
    sleep 1
    munge -n </dev/null | unmunge >/dev/null 2>&1 || fail "munge does not round-trip a credential"
fi

# --- slurm.conf: ours is (re)written; a hand-written one is left alone
if [ ! -f "$CONF" ] || grep -qF "$MARK" "$CONF"; then
    mkdir -p /etc/slurm
    cat >"$CONF" <<EOF
$MARK
ClusterName=gear
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it can start again (default 120)
AuthInfo=cred_expire=20
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_min_interval=200000
JobRequeue=1
ReturnToService=2
MinJobAge=600
KillWait=10
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
fi
mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOG"

# --- daemons (started directly: no systemd in containers)
pgrep -x slurmctld >/dev/null || slurmctld || fail "slurmctld did not start; see $LOG/slurmctld.log"
pgrep -x slurmd >/dev/null || slurmd || fail "slurmd did not start; see $LOG/slurmd.log"

for _ in $(seq 1 30); do
    node_up && { echo "slurm_up: cluster up ($HOST $(node_state))"; exit 0; }
    case "$(node_state)" in
        down|drain|drained|draining|fail)
            scontrol update nodename="$HOST" state=resume 2>/dev/null;;
    esac
    sleep 1
done
echo "--- sinfo"; sinfo 2>&1
echo "--- $LOG/slurmctld.log"; tail -n 20 "$LOG/slurmctld.log" 2>&1
echo "--- $LOG/slurmd.log"; tail -n 20 "$LOG/slurmd.log" 2>&1
fail "node $HOST is not up after 30 s (state: $(node_state))"
