//! The trainer end to end: the real `curate-train` binary on the bundled
//! token shards (fixtures/tokens, which the main job's curation writes).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Entropy (nats) of the train split's token frequencies: what a model that
/// ignores context can reach at best.
fn unigram_entropy() -> f64 {
    let manifest = curate_shards::Manifest::load(&fixture_tokens().join("manifest.json")).unwrap();
    let mut counts = vec![0u64; manifest.tokenizer.vocab_size];
    for shard in manifest.shards(curate_shards::Split::Train) {
        let reader = curate_shards::megatron::Reader::open(&fixture_tokens().join(&shard.name)).unwrap();
        for i in 0..reader.len() {
            for t in reader.get(i).unwrap() {
                counts[t as usize] += 1;
            }
        }
    }
    let n: u64 = counts.iter().sum();
    counts.iter().filter(|&&c| c > 0).map(|&c| c as f64 / n as f64).map(|p| -p * p.ln()).sum()
}

#[test]
fn both_families_learn_the_fixture_text_well_below_its_unigram_entropy() {
    let entropy = unigram_entropy();
    assert!(entropy > 5.5, "{entropy}");
    for (name, model) in [("llama", LLAMA), ("gpt2", GPT2)] {
        let dir = tempfile::tempdir().unwrap();
        let training = "max_steps = 200\nbatch_size = 16\nlearning_rate = 5e-3\neval_interval = 200\neval_steps = 2";
        let c = config(dir.path(), &format!("{model}hidden_size = 128"), "", training);
        train_ok(&c, &[]);
        let m = metrics(&dir.path().join("run"));
        let eval = m.iter().find_map(|l| l["eval_loss"].as_f64()).expect("an evaluation line");
        let losses: Vec<f64> = m.iter().filter_map(|l| l["loss"].as_f64()).collect();
        assert_eq!(losses.len(), 200);
        let last: f64 = losses[190..].iter().sum::<f64>() / 10.0;
        // The first loss is near ln(vocab) = 7.6. A model that ignores
        // context cannot go below the unigram entropy (6.24 nats here);
        // these reach about 5.5 (LLaMA) and 5.7 (GPT-2) in 200 steps.
        assert!(losses[0] > 7.0, "{name}: first loss {}", losses[0]);
        assert!(last < entropy - 0.4, "{name}: last losses {last:.3} vs unigram entropy {entropy:.3}");
        assert!(eval < entropy - 0.3, "{name}: validation loss {eval:.3} vs unigram entropy {entropy:.3}");
        let cp = dir.path().join("run/checkpoints/step-00000200");
        for file in ["model.safetensors", "optimizer.safetensors", "config.json", "model.json", "trainer_state.json"] {
            assert!(cp.join(file).is_file(), "{name}: {file}");
        }
        assert_eq!(std::fs::read_to_string(dir.path().join("run/checkpoints/latest")).unwrap(), "step-00000200");
    }
}

#[test]
fn a_killed_run_resumes_on_the_same_trajectory_to_the_same_weights() {
    let training = "max_steps = 12\ncheckpoint_interval = 4\ngradient_accumulation_steps = 2\nwarmup_steps = 3";
    let whole = tempfile::tempdir().unwrap();
    train_ok(&config(whole.path(), LLAMA, "", training), &[]);

    let killed = tempfile::tempdir().unwrap();
    let c = config(killed.path(), LLAMA, "", training);
    let out = trainer().arg("train").arg(&c).env(curate_trainer::hooks::ABORT_AFTER_STEP, "6").output().unwrap();
    assert!(!out.status.success(), "the abort hook should have killed the run");
    let run = killed.path().join("run");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "step-00000004");
    assert_eq!(trajectory(&run).len(), 6, "steps 5 and 6 ran after the checkpoint");

    let again = train(&c, &[]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("pass --resume"), "{}", stderr(&again));

    let resumed = train_ok(&c, &["--resume"]);
    assert!(
        stderr(&resumed).contains("resuming from") && stderr(&resumed).contains("(step 4)"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(trajectory(&run), trajectory(&whole.path().join("run")));
    for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
        let a = std::fs::read(whole.path().join("run/checkpoints/step-00000012").join(file)).unwrap();
        let b = std::fs::read(run.join("checkpoints/step-00000012").join(file)).unwrap();
        assert!(a == b, "{file} differs after resuming");
    }
    // Resuming a finished run does no more steps.
    train_ok(&c, &["--resume"]);
    assert_eq!(trajectory(&run).len(), 12);
}

#[test]
fn a_resume_with_another_data_order_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    train_ok(&config(dir.path(), LLAMA, "", "max_steps = 2"), &[]);
    let out = train(&config(dir.path(), LLAMA, "seed = 9", "max_steps = 4"), &["--resume"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("data order"), "{}", stderr(&out));
}

#[test]
fn parquet_and_megatron_shards_give_the_same_run() {
    let runs: Vec<_> = ["parquet", "megatron"]
        .iter()
        .map(|format| {
            let dir = tempfile::tempdir().unwrap();
            train_ok(&config(dir.path(), GPT2, &format!("format = \"{format}\""), "max_steps = 4"), &[]);
            trajectory(&dir.path().join("run"))
        })
        .collect();
    assert_eq!(runs[0].len(), 4);
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn activation_checkpointing_gives_the_same_run() {
    let runs: Vec<_> = ["false", "true"]
        .iter()
        .map(|on| {
            let dir = tempfile::tempdir().unwrap();
            train_ok(&config(dir.path(), LLAMA, "", &format!("max_steps = 3\nactivation_checkpointing = {on}")), &[]);
            metrics(&dir.path().join("run")).iter().map(|m| m["loss"].as_f64().unwrap()).collect::<Vec<_>>()
        })
        .collect();
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        assert!((a - b).abs() < 1e-5 * a.abs(), "{runs:?}");
    }
}

#[test]
fn bf16_and_fp16_autocast_train_close_to_fp32() {
    let run = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        train_ok(&config(dir.path(), LLAMA, "", &format!("max_steps = 3\n{extra}")), &[]);
        metrics(&dir.path().join("run"))
    };
    let fp32 = run("");
    for precision in ["bf16 = true", "fp16 = true"] {
        let low = run(precision);
        // At initialisation the logits are tiny and the first loss can round
        // to the same fp32 value; the gradients show the lower precision.
        let (a, b) = (fp32[0]["grad_norm"].as_f64().unwrap(), low[0]["grad_norm"].as_f64().unwrap());
        assert!(a != b, "{precision}: autocast did not change the arithmetic");
        assert!((a - b).abs() < 0.02 * a, "{precision}: first gradient norm {b} vs fp32 {a}");
        for (x, y) in fp32.iter().zip(&low) {
            let (x, y) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
            assert!((x - y).abs() < 0.02 * x, "{precision}: loss {y} vs fp32 {x}");
        }
        assert!(low.iter().all(|m| m["loss"].as_f64().unwrap().is_finite()));
    }
    let fp16 = run("fp16 = true");
    assert_eq!(fp16[0]["loss_scale"], 65536.0);
}

#[test]
fn the_nan_guard_stops_or_skips() {
    // A learning rate this large sends the weights past fp32's range after
    // one update; the next step's loss is not a number.
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), GPT2, "", "max_steps = 4\nlearning_rate = 1e30\nwarmup_steps = 0\ngrad_clip = 0.0");
    let out = train(&c, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("step 2:") && err.contains("nan_policy"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let c = config(
        dir.path(),
        GPT2,
        "",
        "max_steps = 4\nlearning_rate = 1e30\nwarmup_steps = 0\ngrad_clip = 0.0\nnan_policy = \"skip\"",
    );
    let out = train_ok(&c, &[]);
    assert!(stderr(&out).contains("(3 skipped)"), "{}", stderr(&out));
    let m = metrics(&dir.path().join("run"));
    assert_eq!(m.iter().filter(|l| l["skipped"] == true).count(), 3);
}

#[test]
fn bad_configs_and_shards_are_refused_with_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let expect = |config: &Path, code: i32, needles: &[&str]| {
        let out = train(config, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        for n in needles {
            assert!(err.contains(n), "{n:?} not in {err}");
        }
    };
    let c = config(dir.path(), &format!("{LLAMA}hidden_szie = 3"), "", "max_steps = 1");
    expect(&c, 2, &["train.toml", "model", "hidden_szie"]);
    let c = config(dir.path(), &LLAMA.replace("num_kv_heads = 2", "num_kv_heads = 3"), "", "max_steps = 1");
    expect(&c, 2, &["model.num_kv_heads: 3 does not divide num_heads 4"]);
    let c = config(dir.path(), &format!("{LLAMA}vocab_size = 100"), "", "max_steps = 1");
    expect(&c, 1, &["model.vocab_size: 100 is smaller than the tokenizer's 2000"]);

    // Damaged shards, in a copy of the fixture.
    let data = dir.path().join("tokens");
    std::fs::create_dir(&data).unwrap();
    for entry in std::fs::read_dir(fixture_tokens()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
    }
    let with_data = |dir: &Path, extra: &str| {
        let c = config(dir, LLAMA, extra, "max_steps = 1");
        let text = std::fs::read_to_string(&c)
            .unwrap()
            .replace(&fixture_tokens().display().to_string(), &data.display().to_string());
        std::fs::write(&c, text).unwrap();
        c
    };
    let bin = data.join("train-00001.bin");
    let bytes = std::fs::read(&bin).unwrap();
    std::fs::write(&bin, &bytes[..bytes.len() - 2]).unwrap();
    expect(&with_data(dir.path(), ""), 1, &["train-00001.bin", "bytes, but the index says"]);
    std::fs::write(&bin, &bytes).unwrap();
    // Token ids beyond the vocabulary (every one 65535): named, in either format.
    std::fs::write(&bin, vec![0xff; bytes.len()]).unwrap();
    expect(&with_data(dir.path(), ""), 1, &["train-00001.bin", "is id 65535, not below the model's vocab_size"]);
    std::fs::write(&bin, &bytes).unwrap();
    // A manifest that claims a smaller vocabulary than the shards use: the Parquet shard is named when loaded.
    let manifest_path = data.join("manifest.json");
    let manifest = std::fs::read_to_string(&manifest_path).unwrap();
    let small: serde_json::Value = {
        let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        m["tokenizer"]["vocab_size"] = 100.into();
        m
    };
    std::fs::write(&manifest_path, small.to_string()).unwrap();
    expect(
        &with_data(dir.path(), "format = \"parquet\""),
        1,
        &["train-00000.parquet", "not below the model's vocab_size 100"],
    );
    std::fs::write(&manifest_path, manifest).unwrap();
    std::fs::write(data.join("train-00000.parquet"), b"PAR1 not really").unwrap();
    expect(&with_data(dir.path(), "format = \"parquet\""), 1, &["train-00000.parquet"]);
    std::fs::remove_file(data.join("manifest.json")).unwrap();
    expect(&with_data(dir.path(), ""), 1, &["manifest.json"]);
}

#[test]
fn generate_continues_a_prompt_from_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    train_ok(&config(dir.path(), LLAMA, "", "max_steps = 20"), &[]);
    let tokenizer = manifest_dir().join("../fixtures/tokenizer.json");
    let sample = |extra: &[&str]| {
        let out = trainer()
            .args(["generate", "--device", "cpu", "--prompt", "Call me", "--max-new-tokens", "12", "--checkpoint"])
            .arg(dir.path().join("run"))
            .arg("--tokenizer")
            .arg(&tokenizer)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let greedy = sample(&["--temperature", "0"]);
    assert!(greedy.starts_with("Call me") && greedy.trim_end().len() > "Call me".len(), "{greedy:?}");
    assert_eq!(greedy, sample(&["--temperature", "0"]));
    assert_eq!(sample(&["--seed", "5"]), sample(&["--seed", "5"]));
}

/// `curate train` and `curate generate` run this trainer. The workspace
/// build (scripts/test.sh) puts `curate` beside `curate-train`.
#[test]
fn curate_train_runs_the_trainer() {
    let curate = Path::new(env!("CARGO_BIN_EXE_curate-train")).with_file_name("curate");
    assert!(curate.is_file(), "{} missing: build the workspace (scripts/test.sh)", curate.display());
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), GPT2, "", "max_steps = 2");
    let out =
        Command::new(&curate).arg("train").arg(&c).arg("--output").arg(dir.path().join("elsewhere")).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("trained 2 steps"), "{}", stderr(&out));
    assert_eq!(trajectory(&dir.path().join("elsewhere")).len(), 2);
    let help = Command::new(&curate).args(["generate", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--top-p"));
}
