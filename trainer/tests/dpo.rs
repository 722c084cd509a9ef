//! DPO on preference shards (fixtures/chat/preference-tokens, made by
//! `curate tokenize --chat` from prompt, chosen, rejected records): one
//! step's loss, rewards and gradients equal TRL's formulas computed with
//! transformers (and PEFT under LoRA) on the same batch; a short run raises
//! the reward accuracy of held-out pairs above chance; a killed run
//! resumes bit for bit.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use tch::Tensor;

fn preference_tokens() -> PathBuf {
    manifest_dir().join("../fixtures/chat/preference-tokens")
}

fn data() -> String {
    format!("path = \"{}\"\nseq_len = 128", preference_tokens().display())
}

fn with_tables(path: &Path, tables: &str) {
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push_str(tables);
    std::fs::write(path, text).unwrap();
}

#[test]
fn one_dpo_step_equals_trl_formulas() {
    let work = tempfile::tempdir().unwrap();
    let hf = work.path().join("hf");
    reference(&["make", hf.to_str().unwrap(), "chat"]);
    let base = hf.join("llama-chat");
    let adapter = work.path().join("adapter");
    reference(&["lora-make", base.to_str().unwrap(), adapter.to_str().unwrap(), "q_proj,v_proj,down_proj"]);
    for (loss, smoothing, lora) in [
        ("sigmoid", 0.0, false),
        ("sigmoid", 0.1, false),
        ("ipo", 0.0, false),
        ("hinge", 0.0, false),
        ("sigmoid", 0.0, true),
    ] {
        let what = format!("{loss} (smoothing {smoothing}, LoRA {lora})");
        let dir = work.path().join(format!("{loss}-{smoothing}-{lora}"));
        std::fs::create_dir_all(&dir).unwrap();
        let c = config(&dir, &format!("init_from = \"{}\"", base.display()), &data(), "batch_size = 3\nmax_steps = 1");
        let mut tables = format!("[dpo]\nbeta = 0.5\nloss = \"{loss}\"\nlabel_smoothing = {smoothing}\n");
        if lora {
            tables.push_str(&format!("[lora]\ninit_from = \"{}\"\n", adapter.display()));
        }
        with_tables(&c, &tables);
        let out = trainer().arg("gradients").arg(&c).arg("--out").arg(&dir).output().unwrap();
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let ours: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let reference_file = dir.join("trl.safetensors");
        reference(&[
            "dpo",
            base.to_str().unwrap(),
            if lora { adapter.to_str().unwrap() } else { "-" },
            dir.join("batch.safetensors").to_str().unwrap(),
            loss,
            "0.5",
            &smoothing.to_string(),
            reference_file.to_str().unwrap(),
        ]);
        let theirs: HashMap<String, Tensor> = Tensor::read_safetensors(&reference_file).unwrap().into_iter().collect();
        let close = |a: f64, b: f64, name: &str| {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1e-2), "{what}: {name} {a} against TRL's formula {b}");
        };
        close(ours, theirs["loss"].double_value(&[0]), "loss");
        let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("dpo.json")).unwrap()).unwrap();
        for name in [
            "rewards/chosen",
            "rewards/rejected",
            "rewards/margins",
            "rewards/accuracies",
            "logps/chosen",
            "logps/rejected",
        ] {
            if loss == "ipo" && name.starts_with("logps") {
                continue; // IPO's are per token on both sides; the rewards cover them.
            }
            close(stats[name].as_f64().unwrap(), theirs[name].double_value(&[0]), name);
        }
        if loss != "ipo" {
            let batch: HashMap<String, Tensor> =
                Tensor::read_safetensors(dir.join("batch.safetensors")).unwrap().into_iter().collect();
            let error = relative_error(&batch["reference_logps"], &theirs["reference"]);
            assert!(error <= 1e-5, "{what}: reference log-probabilities differ by {error:e}");
        }
        let grads = Tensor::read_safetensors(dir.join("gradients.safetensors")).unwrap();
        assert!(!grads.is_empty());
        for (name, g) in &grads {
            let error = relative_error(g, &theirs[name]);
            assert!(error <= 1e-4, "{what}: gradient of {name} differs by {error:e}");
        }
    }
}

fn dpo_config(dir: &Path, training: &str) -> PathBuf {
    let c = config(
        dir,
        "architecture = \"llama\"\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nmax_position_embeddings = 128",
        &data(),
        training,
    );
    with_tables(&c, "[dpo]\nbeta = 0.1\n");
    c
}

#[test]
fn a_short_dpo_run_learns_held_out_preferences_and_resumes_bit_for_bit() {
    let training = "max_steps = 24\nbatch_size = 4\nlearning_rate = 3e-3\nwarmup_steps = 2\ncheckpoint_interval = 12\n\
                    eval_interval = 12\neval_steps = 10";
    let whole = tempfile::tempdir().unwrap();
    train_ok(&dpo_config(whole.path(), training), &[]);
    let m = metrics(&whole.path().join("run"));
    let accuracy: Vec<f64> = m.iter().filter_map(|l| l["eval_rewards/accuracies"].as_f64()).collect();
    assert_eq!(accuracy.len(), 2, "{m:?}");
    assert!(accuracy[1] > 0.75, "held-out reward accuracy {accuracy:?} is not above chance");
    let train_metrics: Vec<&serde_json::Value> = m.iter().filter(|l| l.get("rewards/margins").is_some()).collect();
    assert_eq!(train_metrics.len(), 24);
    assert!(whole.path().join("run/reference_logps.safetensors").is_file());

    let killed = tempfile::tempdir().unwrap();
    let c = dpo_config(killed.path(), training);
    let out = trainer().arg("train").arg(&c).env(curate_trainer::hooks::ABORT_AFTER_STEP, "15").output().unwrap();
    assert!(!out.status.success());
    train_ok(&c, &["--resume"]);
    assert_eq!(trajectory(&killed.path().join("run")), trajectory(&whole.path().join("run")));
    let a = std::fs::read(whole.path().join("run/checkpoints/step-00000024/model.safetensors")).unwrap();
    let b = std::fs::read(killed.path().join("run/checkpoints/step-00000024/model.safetensors")).unwrap();
    assert!(a == b, "the weights differ after resuming");
}

#[test]
fn preference_data_and_the_objective_must_agree() {
    let work = tempfile::tempdir().unwrap();
    let c = config(work.path(), LLAMA, &data(), "max_steps = 1");
    let out = train(&c, &[]);
    assert!(stderr(&out).contains("holds preference pairs"), "{}", stderr(&out));
    let c = config(work.path(), LLAMA, "", "max_steps = 1");
    with_tables(&c, "[dpo]\nbeta = 0.1\n");
    let out = train(&c, &[]);
    assert!(stderr(&out).contains("dpo: ") && stderr(&out).contains("holds no preference pairs"), "{}", stderr(&out));
    with_tables(&c, "");
    let bad = config(work.path(), LLAMA, &data(), "max_steps = 1");
    with_tables(&bad, "[dpo]\nbeta = -1.0\n");
    let out = train(&bad, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("dpo.beta: -1 is not a positive number"), "{}", stderr(&out));
}

#[test]
fn two_ranks_follow_one_rank_with_the_same_pairs() {
    let training = "max_steps = 4\nbatch_size = 4\nglobal_batch_size = 4\nlearning_rate = 3e-3\nwarmup_steps = 1";
    let single = tempfile::tempdir().unwrap();
    train_ok(&dpo_config(single.path(), training), &[]);
    let two = tempfile::tempdir().unwrap();
    let c = dpo_config(two.path(), &format!("{training}\nbatch_size = 2"));
    let out = trainer().arg("train").arg(&c).args(["--nproc-per-node", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = |dir: &Path| {
        metrics(&dir.join("run"))
            .into_iter()
            .filter_map(|m| Some((m.get("loss")?.as_f64()?, m["grad_norm"].as_f64()?)))
            .collect::<Vec<_>>()
    };
    let margins = |dir: &Path| {
        metrics(&dir.join("run")).into_iter().filter_map(|m| m.get("rewards/margins")?.as_f64()).collect::<Vec<_>>()
    };
    let (a, b) = (rows(single.path()), rows(two.path()));
    assert_eq!(a.len(), 4);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!((x.0 - y.0).abs() <= 1e-4 * x.0.abs(), "step {}: loss {} on one rank, {} on two", step + 1, x.0, y.0);
        assert!((x.1 - y.1).abs() <= 1e-4 * x.1.abs(), "step {}: grad_norm {} against {}", step + 1, x.1, y.1);
    }
    for (x, y) in margins(single.path()).iter().zip(margins(two.path())) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1e-3), "reward margins {x} on one rank, {y} on two");
    }
}
