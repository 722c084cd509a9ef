//! Helpers shared by the CLI tests: they run the real `curate` binary on
//! real files in a temporary folder.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn curate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_curate"));
    cmd.env_remove("RANK").env_remove("WORLD_SIZE");
    // A test hook left in the shell must not stop an unrelated test midway.
    for hook in curate::runtime::hooks::ALL {
        cmd.env_remove(hook);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("SLURM_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Starts `cmd` (with a `CURATE_TEST_PAUSE_*` hook set), waits until it
/// says it paused, calls `while_paused`, and kills it there with SIGKILL.
pub fn kill_at_pause(cmd: &mut Command, while_paused: impl FnOnce()) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("paused for test")), "the process reaches the pause");
    while_paused();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
}

/// A pipeline file in `dir` with the given TOML body; returns its path.
pub fn pipeline(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    fs::write(&path, body).unwrap();
    path
}

/// Runs `curate run` with extra flags and returns the output; panics on a
/// failure to start.
pub fn run(pipeline: &Path, flags: &[&str]) -> Output {
    curate().arg("run").arg(pipeline).args(["--progress", "none"]).args(flags).output().unwrap()
}

pub fn run_ok(pipeline: &Path, flags: &[&str]) -> Output {
    let out = run(pipeline, flags);
    assert!(out.status.success(), "curate failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stats(out_dir: &Path) -> Value {
    let stats: Value = serde_json::from_slice(&fs::read(out_dir.join("stats.json")).unwrap()).unwrap();
    assert_invariant(&stats);
    stats
}

/// Every input document is kept, dropped or an error, and the per-step and
/// per-kind counts add up.
pub fn assert_invariant(stats: &Value) {
    let n = |k: &str| stats[k].as_u64().unwrap();
    assert_eq!(n("input_docs"), n("kept_docs") + n("dropped_docs") + n("error_docs"), "{stats:#}");
    let step_drops: u64 = stats["steps"].as_array().unwrap().iter().map(|s| s["dropped"].as_u64().unwrap()).sum();
    assert_eq!(step_drops, n("dropped_docs"));
    let errors: u64 = stats["errors"].as_object().unwrap().values().map(|o| o["count"].as_u64().unwrap()).sum();
    assert_eq!(errors, n("error_docs"));
}

/// Every file under `dir` except the run's own bookkeeping (stats, which
/// hold timings, and `.curate/`), by relative path.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == ".curate" || rel == "stats" || rel == "stats.json" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The documents of the JSON Lines shards (`*.jsonl.zst`) directly in `dir`, in
/// shard order.
pub fn jsonl_docs(dir: &Path) -> Vec<Value> {
    let mut shards: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .collect();
    shards.sort();
    let mut docs = Vec::new();
    for shard in shards {
        let text = zstd::decode_all(fs::File::open(&shard).unwrap()).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            docs.push(serde_json::from_slice(line).unwrap());
        }
    }
    docs
}

/// Deterministic English-like documents: `n` documents of varying length,
/// ids `doc-0`, `doc-1`, ...
pub fn generate_docs(n: usize, seed: u64) -> Vec<Value> {
    const WORDS: &[&str] = &[
        "the", "whale", "sea", "ship", "captain", "of", "and", "a", "to", "in", "harpoon", "ocean", "sailor", "deck",
        "wind", "wave", "Ishmael", "voyage", "island", "mast", "rope", "storm", "é", "naïve", "日本",
    ];
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|i| {
            let len = 5 + next() % 200;
            let text: Vec<&str> = (0..len).map(|_| WORDS[next() % WORDS.len()]).collect();
            serde_json::json!({"id": format!("doc-{i}"), "text": text.join(" "), "n": i, "meta": {"source": "gen", "even": i % 2 == 0}})
        })
        .collect()
}

pub fn write_jsonl(path: &Path, docs: &[Value]) {
    let mut f = fs::File::create(path).unwrap();
    for d in docs {
        writeln!(f, "{d}").unwrap();
    }
}

pub fn write_jsonl_zst(path: &Path, docs: &[Value]) {
    let mut text = Vec::new();
    for d in docs {
        writeln!(text, "{d}").unwrap();
    }
    fs::write(path, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
}

/// Every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<arrow_array::RecordBatch> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(fs::File::open(path).unwrap()).unwrap();
    reader.build().unwrap().map(|b| b.unwrap()).collect()
}

/// The package's folder. Read when the test runs (cargo sets it then too),
/// not baked in when it is compiled: a target dir shared between checkouts
/// at different paths reuses test binaries, and a baked-in path would point
/// at the checkout that built them.
pub fn root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

/// Every file under `dir` (recursively), as full paths.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out
}

/// Hugging Face transformers as a reference (a script of tests/reference/),
/// run with the python that `scripts/pyref.sh` prints; scripts/test.sh sets
/// CURATE_PYREF to it.
pub fn python_reference(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let python = std::env::var_os("CURATE_PYREF").unwrap_or_else(|| {
        panic!("CURATE_PYREF is not set: run the tests through scripts/test.sh, or export CURATE_PYREF=$(scripts/pyref.sh)")
    });
    let out = Command::new(python).arg(root().join("tests/reference").join(script)).args(args).output().unwrap();
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
