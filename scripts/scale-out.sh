#!/usr/bin/env bash
# Scale evidence for object storage and Slurm: a generated corpus through
# quality filters, MinHash dedup and tokenization, as a chain of job arrays
# on a one-node Slurm cluster started here, writing to a local S3 server
# (moto). Prints, per stage, its wall time, throughput, and each task's
# time and peak memory (the line `curate` ends a Slurm task's log with).
#
#   CURATE=target/release/curate [TOKENIZE=0] scripts/scale-out.sh GB TASKS [WORK]
#
# Needs scripts/slurm.sh and scripts/s3-server.sh (run once each). The
# corpus is generated once into $CORPUS (default /tmp/curate-scale-corpus),
# 4 files of 250 MB of text per GB, and a run of N GB reads its first 4N;
# WORK (default /tmp/curate-scale-GB) holds the dedup work folder and the
# logs, and the S3 server's objects. TOKENIZE=0 leaves the tokenization
# (one task, the last to finish: see docs/benchmarks.md) out.
set -euo pipefail
cd "$(dirname "$0")/.."
gb=$1
tasks=$2
work=${3:-/tmp/curate-scale-$gb}
curate=$(realpath "${CURATE:-target/release/curate}")
python=$(scripts/s3-server.sh)
corpus=${CORPUS:-/tmp/curate-scale-corpus}
mkdir -p "$corpus"
rm -rf "$work"
mkdir -p "$work/in"
# The corpus: 4 files per GB of JSON Lines text, zstd-compressed.
files=$((gb * 4))
for ((i = 0; i < files; i++)); do
    f=$corpus/part-$(printf %04d "$i").jsonl
    if [[ ! -f $f.zst ]]; then
        python3 scripts/gen_corpus.py "$f" --bytes 250000000 --seed "$i" >/dev/null
        zstd -q -T2 --rm "$f"
    fi
    ln -s "$f.zst" "$work/in/"
done
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
    munged --force --foreground 2>"$work/munged.log" &
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
TOML
if [[ ${TOKENIZE:-1} != 0 ]]; then
    printf '[tokenize]\ntokenizer = "%s"\nformats = ["megatron"]\n' "$(realpath fixtures/tokenizer.json)" >>"$work/pipeline.toml"
fi
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
"$python" tests/reference/s3_objects.py get scale out/stats.json "$work/stats.json"
python3 -c "import json,sys; s=json.load(open('$work/stats.json')); print('documents:', s['input_docs'], 'kept:', s['kept_docs'], 'dropped:', s['dropped_docs'], 'errors:', s['error_docs'], 'by step:', [(x['name'], x['dropped']) for x in s['steps']])"
if [[ ${TOKENIZE:-1} != 0 ]]; then
    "$python" tests/reference/s3_objects.py get scale out/tokens/stats.json "$work/tokens-stats.json"
    python3 -c "import json; s=json.load(open('$work/tokens-stats.json')); print('tokens:', s['tokens'], 'in', round(s['wall_seconds']), 's, one task,', round(s['text_chars'] / s['wall_seconds'] / 1e6, 1), 'M characters/s')"
fi
"$python" tests/reference/s3_objects.py download scale out/.curate/storage "$work/storage" >/dev/null
python3 -c "
import glob, json
rs = [json.load(open(f)) for f in glob.glob('$work/storage/*.json')]
print('object store, all tasks:', sum(r['requests'] for r in rs), 'requests,', sum(r['retries'] for r in rs), 'retries,', round(sum(r['bytes_written'] for r in rs) / 1e9, 2), 'GB written')"
du -shL "$work/in"
du -sh "$work/dedup"
