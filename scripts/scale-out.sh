#!/usr/bin/env bash
# Scale evidence for object storage and Slurm: a generated corpus through
# quality filters, MinHash dedup and tokenization, as a chain of job arrays
# on a one-node Slurm cluster started here, writing to a local S3 server
# (moto). Prints, per stage, its wall time, throughput, and each task's
# time and peak memory (the line `curate` ends a Slurm task's log with).
#
#   CURATE=target/release/curate scripts/scale-out.sh GB TASKS [WORK]
#
# Needs scripts/slurm.sh and scripts/s3-server.sh (run once each); WORK
# (default /tmp/curate-scale-GB) holds the corpus, the dedup work folder
# and the logs; the S3 server keeps its objects under WORK/s3.
set -euo pipefail
cd "$(dirname "$0")/.."
gb=$1
tasks=$2
work=${3:-/tmp/curate-scale-$gb}
curate=$(realpath "${CURATE:-target/release/curate}")
python=$(scripts/s3-server.sh)
mkdir -p "$work/in"
# The corpus: 4 files per GB of JSON Lines text, zstd-compressed.
files=$((gb * 4))
for ((i = 0; i < files; i++)); do
    f=$work/in/part-$(printf %04d "$i").jsonl
    [[ -f $f.zst ]] && continue
    python3 scripts/gen_corpus.py "$f" --bytes 250000000 --seed "$i" >/dev/null
    zstd -q -T2 --rm "$f"
done
rm -rf "$work/dedup" "$work/logs" "$work/slurm" "$work/s3" "$work/staging"
mkdir -p "$work/slurm"/{state,spool,log} "$work/s3"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# S3: moto's server, its objects on disk (not in memory).
s3_port=$(free_port)
MOTO_S3_CUSTOM_ENDPOINTS="" TMPDIR=$work/s3 "$python" -m moto.server -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
pids+=($!)
export AWS_ACCESS_KEY_ID=scale AWS_SECRET_ACCESS_KEY=scale AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port CURATE_STAGING=$work/staging
until (echo >/dev/tcp/127.0.0.1/"$s3_port") 2>/dev/null; do sleep 0.2; done
"$python" tests/reference/s3_objects.py mkbucket scale
# Slurm: one node with this machine's cores, as tests/cli/slurm.rs sets it up.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    munged --force --foreground &
    pids+=($!)
    until [[ -S /run/munge/munge.socket.2 ]]; do sleep 0.2; done
fi
host=$(hostname -s)
ctld_port=$(free_port)
export SLURM_CONF=$work/slurm/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=curatescale
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$(free_port)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$work/slurm/state
SlurmdSpoolDir=$work/slurm/spool
SlurmctldPidFile=$work/slurm/ctld.pid
SlurmdPidFile=$work/slurm/d.pid
SlurmctldLogFile=$work/slurm/log/ctld.log
SlurmdLogFile=$work/slurm/log/d.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -f "$SLURM_CONF" >/dev/null 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >/dev/null 2>&1 &
pids+=($!)
until (echo >/dev/tcp/127.0.0.1/"$ctld_port") 2>/dev/null; do sleep 0.2; done
cat >"$work/pipeline.toml" <<TOML
[input]
path = "$work/in"
[output]
path = "s3://scale/out"
format = "jsonl"
[[step]]
type = "gopher_quality"
[[step]]
type = "fineweb_quality"
[[step]]
type = "dedup"
work = "$work/dedup"
[tokenize]
tokenizer = "$(realpath fixtures/tokenizer.json)"
formats = ["megatron"]
TOML
start=$(date +%s.%N)
"$curate" slurm "$work/pipeline.toml" --tasks "$tasks" --logs "$work/logs" --wait
end=$(date +%s.%N)
python3 - "$work/logs" "$gb" "$start" "$end" <<'PY'
import glob, os, re, sys
logs, gb, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
print(f"{gb:g} GB of text, {end - start:.0f} s from submission to the last task's end")
print("| stage | tasks | stage wall s | MB/s | task seconds (min-max) | peak memory per task MB (max) |")
print("|---|---|---|---|---|---|")
for stage in ["signatures", "buckets", "clusters", "run"]:
    rows = []
    for log in glob.glob(f"{logs}/{stage}-*.log"):
        m = re.search(r"curate: ([\d.]+) s, peak memory ([\d.]+) MB", open(log).read())
        if m:
            seconds, peak = float(m[1]), float(m[2])
            done = os.path.getmtime(log)
            rows.append((done - seconds, done, seconds, peak))
    if not rows:
        continue
    wall = max(r[1] for r in rows) - min(r[0] for r in rows)
    rate = gb * 1000 / wall if stage in ("signatures", "run") else float("nan")
    secs = [r[2] for r in rows]
    print(f"| {stage} | {len(rows)} | {wall:.1f} | {rate:.1f} | {min(secs):.1f}-{max(secs):.1f} | {max(r[3] for r in rows):.0f} |")
PY
"$python" tests/reference/s3_objects.py download scale out "$work/from-s3" >/dev/null
python3 -c "import json,sys; s=json.load(open('$work/from-s3/stats.json')); print('documents:', s['input_docs'], 'kept:', s['kept_docs'], 'dropped:', s['dropped_docs'], 'errors:', s['error_docs'])"
python3 -c "import json; m=json.load(open('$work/from-s3/tokens/manifest.json')); print('tokens:', sum(s.get('tokens', 0) for s in m.get('shards', [])))" || true
du -sh "$work/in" "$work/dedup" "$work/from-s3"
