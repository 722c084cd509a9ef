//! What the trainer's test binaries share: the real `curate-train`, the
//! bundled token shards, a config writer and readers of a run's metrics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Variables that make a process a rank of a job: a test sets them itself,
/// never inherits them (from a test run inside torchrun or Slurm).
pub const LAUNCH_VARS: &[&str] = &[
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHELASTIC_RESTART_COUNT",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_LOCALID",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
    "SLURM_JOB_ID",
    "SLURM_NTASKS_PER_NODE",
];

pub fn trainer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_curate-train"));
    for name in curate_trainer::hooks::ALL.iter().chain(LAUNCH_VARS) {
        c.env_remove(name);
    }
    c
}

pub fn fixture_tokens() -> PathBuf {
    manifest_dir().join("../fixtures/tokens")
}

pub const LLAMA: &str = "architecture = \"llama\"\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nnum_kv_heads = 2\n\
                     max_position_embeddings = 128\n";
pub const GPT2: &str =
    "architecture = \"gpt2\"\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nmax_position_embeddings = 128\n";

/// A train.toml in `dir`: `model`, `data` and `training` lines are added
/// to their tables, replacing the defaults below key by key. One thread, so
/// parallel tests do not fight over the cores.
pub fn config(dir: &Path, model: &str, data: &str, training: &str) -> PathBuf {
    config_with(dir, model, data, training, "")
}

/// As [`config`], with a `[distributed]` table.
pub fn config_with(dir: &Path, model: &str, data: &str, training: &str, distributed: &str) -> PathBuf {
    let table = |defaults: String, extra: &str| {
        let mut lines: Vec<String> = Vec::new();
        for line in defaults.lines().chain(extra.lines()).filter(|l| !l.trim().is_empty()) {
            let key = line.split('=').next().unwrap().trim();
            lines.retain(|l| l.split('=').next().unwrap().trim() != key);
            lines.push(line.to_string());
        }
        lines.join("\n")
    };
    let data_defaults = format!("path = \"{}\"\nseq_len = 64", fixture_tokens().display());
    let training_defaults = format!(
        "device = \"cpu\"\nthreads = 1\nbatch_size = 8\nlearning_rate = 3e-3\nwarmup_steps = 5\noutput_dir = \"{}\"",
        dir.join("run").display()
    );
    let text = format!(
        "[model]\n{}\n[data]\n{}\n[training]\n{}\n[distributed]\n{}\n",
        table(String::new(), model),
        table(data_defaults, data),
        table(training_defaults, training),
        table(String::new(), distributed)
    );
    let path = dir.join("train.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn train(config: &Path, extra: &[&str]) -> Output {
    trainer().arg("train").arg(config).args(extra).output().unwrap()
}

pub fn train_ok(config: &Path, extra: &[&str]) -> Output {
    let out = train(config, extra);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn metrics(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (step, loss, grad_norm) of every training step, as bit patterns.
pub fn trajectory(run: &Path) -> Vec<(u64, u64, u64)> {
    metrics(run)
        .iter()
        .filter(|m| m.get("loss").is_some())
        .map(|m| {
            (
                m["step"].as_u64().unwrap(),
                m["loss"].as_f64().unwrap().to_bits(),
                m["grad_norm"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

/// The trainer's folder, read when the test runs rather than baked in at
/// compile time: a target dir shared between checkouts reuses test binaries.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Hugging Face transformers as a reference (tests/reference/hf_models.py),
/// run with the python that `scripts/pyref.sh` prints; scripts/test.sh sets
/// CURATE_PYREF to it.
pub fn reference(args: &[&str]) -> Output {
    reference_script("hf_models.py", args)
}

/// Another script of tests/reference/, run as [`reference`] runs hf_models.py.
pub fn reference_script(script: &str, args: &[&str]) -> Output {
    let python = std::env::var_os("CURATE_PYREF").unwrap_or_else(|| {
        panic!("CURATE_PYREF is not set: run the tests through scripts/test.sh, or export CURATE_PYREF=$(scripts/pyref.sh)")
    });
    let out =
        Command::new(python).arg(manifest_dir().join("tests/reference").join(script)).args(args).output().unwrap();
    assert!(out.status.success(), "{script} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// max |a - b| / max |b|: the error relative to the reference's scale, so
/// that logits near zero do not blow it up.
pub fn relative_error(ours: &tch::Tensor, theirs: &tch::Tensor) -> f64 {
    let (a, b) = (ours.to_kind(tch::Kind::Double), theirs.to_kind(tch::Kind::Double));
    let diff = (&a - &b).abs().max().double_value(&[]);
    diff / b.abs().max().double_value(&[]).max(1e-30)
}
