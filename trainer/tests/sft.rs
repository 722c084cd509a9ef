//! Supervised fine-tuning on chat shards (fixtures/chat/tokens, made by
//! `curate tokenize --chat`): packed rows compute what their examples
//! compute alone, one step's loss and gradients equal transformers' on the
//! same batch and mask, packed and unpacked, and a run learns and resumes
//! bit for bit.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use curate_shards::{Manifest, Split};
use curate_trainer::config::{ShardFormat, TrainConfig};
use curate_trainer::model::{self, cross_entropy_sum, Packing, Place, IGNORE};
use curate_trainer::packing::{self, Overlong};
use tch::{nn, Device, Tensor};

fn chat_tokens() -> PathBuf {
    manifest_dir().join("../fixtures/chat/tokens")
}

fn small(architecture: &str, extra: &str) -> (nn::VarStore, Box<dyn model::CausalLm>) {
    let text = format!(
        "[model]\narchitecture = \"{architecture}\"\nvocab_size = 2011\nhidden_size = 32\nnum_layers = 2\n\
         num_heads = 4\nmax_position_embeddings = 512\n{extra}\n[data]\npath = \"d\"\nseq_len = 256\n\
         [training]\nmax_steps = 1\n"
    );
    let config = TrainConfig::parse(&text).unwrap().model;
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = model::build(&vs, &config);
    // Larger weights make attention sharp, so that a token attending across
    // an example's border would change the loss well beyond rounding.
    tch::no_grad(|| {
        for (_, mut w) in vs.variables() {
            if w.dim() == 2 {
                let _ = w.g_mul_scalar_(8.0);
            }
        }
    });
    (vs, m)
}

#[test]
fn packed_rows_compute_what_their_examples_compute_alone() {
    let manifest = Manifest::load(&chat_tokens().join("manifest.json")).unwrap();
    assert!(manifest.loss_mask);
    let examples = packing::read_examples(&chat_tokens(), &manifest, Split::Train, ShardFormat::Parquet, 2011).unwrap();
    let from_megatron =
        packing::read_examples(&chat_tokens(), &manifest, Split::Train, ShardFormat::Megatron, 2011).unwrap();
    assert_eq!(examples, from_megatron, "both formats carry the same examples and masks");
    let rows = packing::pack(examples, 256, Overlong::Truncate, true);
    assert!(rows.count() < rows.stats.examples, "several examples share a row: {:?}", rows.stats);
    for (architecture, extra) in [("llama", "num_kv_heads = 2\nsliding_window = 16"), ("gpt2", "")] {
        let (_vs, m) = small(architecture, extra);
        for i in 0..rows.count() {
            let row = rows.row(i);
            let t = row.tokens.len() as i64;
            let ids = Tensor::from_slice(&row.tokens).view([1, t]);
            let packing = Packing::new(
                Tensor::from_slice(&row.positions).view([1, t]),
                &Tensor::from_slice(&row.segments).view([1, t]),
            );
            let logits = tch::no_grad(|| m.forward_at(&ids, Place::Packed(&packing)));
            let targets = Tensor::from_slice(&row.targets).view([1, t]);
            let packed = cross_entropy_sum(&logits, &targets).double_value(&[]);
            // The same examples, each alone from position 0.
            let mut alone = 0.0;
            // Padding is a segment too, with no target.
            for s in 0..=*row.segments.iter().max().unwrap() {
                let at: Vec<usize> = (0..row.tokens.len()).filter(|&j| row.segments[j] == s).collect();
                let n = at.len() as i64;
                let ids = Tensor::from_slice(&at.iter().map(|&j| row.tokens[j]).collect::<Vec<_>>()).view([1, n]);
                let targets = Tensor::from_slice(&at.iter().map(|&j| row.targets[j]).collect::<Vec<_>>()).view([1, n]);
                if targets.ne(IGNORE).sum(tch::Kind::Int64).int64_value(&[]) > 0 {
                    alone += cross_entropy_sum(&tch::no_grad(|| m.forward(&ids, None)), &targets).double_value(&[]);
                }
            }
            assert!(
                (packed - alone).abs() <= 1e-4 * alone.abs(),
                "{architecture} row {i}: packed loss {packed} against {alone} one by one"
            );
        }
    }
}

#[test]
fn an_sft_step_matches_transformers_packed_and_unpacked() {
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("hf");
    reference(&["make", models.to_str().unwrap(), "chat"]);
    for case in ["llama-chat", "mistral-chat"] {
        for packed in [true, false] {
            let dir = work.path().join(format!("{case}-{packed}"));
            std::fs::create_dir_all(&dir).unwrap();
            let model = format!("init_from = \"{}\"", models.join(case).display());
            let data = format!("path = \"{}\"\nseq_len = 256\npacking = {packed}", chat_tokens().display());
            let config = config(&dir, &model, &data, "batch_size = 6\nmax_steps = 1");
            let out = trainer().arg("gradients").arg(&config).arg("--out").arg(&dir).output().unwrap();
            assert!(out.status.success(), "{case}: {}", stderr(&out));
            let ours: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
            let batch: HashMap<String, Tensor> =
                Tensor::read_safetensors(dir.join("batch.safetensors")).unwrap().into_iter().collect();
            assert!(batch.contains_key("position_ids"));
            let ignored = batch["targets"].eq(IGNORE).sum(tch::Kind::Int64).int64_value(&[]);
            assert!(ignored > 0, "the batch has prompt tokens the loss skips");
            let reference_file = dir.join("reference.safetensors");
            reference(&[
                "loss",
                models.join(case).to_str().unwrap(),
                dir.join("batch.safetensors").to_str().unwrap(),
                reference_file.to_str().unwrap(),
            ]);
            let theirs: HashMap<String, Tensor> =
                Tensor::read_safetensors(&reference_file).unwrap().into_iter().collect();
            let loss = theirs["loss"].double_value(&[0]);
            let what = format!("{case}, packing = {packed}");
            assert!((ours - loss).abs() / loss <= 1e-4, "{what}: loss {ours} against transformers' {loss}");
            for (name, g) in Tensor::read_safetensors(dir.join("gradients.safetensors")).unwrap() {
                let error = relative_error(&g, &theirs[&name]);
                assert!(error <= 1e-4, "{what}: gradient of {name} differs by {error:e}");
            }
        }
    }
}

fn sft_config(dir: &Path, training: &str) -> PathBuf {
    let data = format!("path = \"{}\"\nseq_len = 256", chat_tokens().display());
    config(
        dir,
        "architecture = \"llama\"\nhidden_size = 64\nnum_layers = 2\nnum_heads = 4\nmax_position_embeddings = 256",
        &data,
        training,
    )
}

#[test]
fn an_sft_run_learns_reports_its_packing_and_resumes_bit_for_bit() {
    let training =
        "max_steps = 8\nbatch_size = 2\ncheckpoint_interval = 4\nlearning_rate = 3e-3\nwarmup_steps = 2\neval_interval = 8";
    let whole = tempfile::tempdir().unwrap();
    let out = train_ok(&sft_config(whole.path(), training), &[]);
    assert!(stderr(&out).contains("chat data: 6 examples in"), "{}", stderr(&out));
    let m = metrics(&whole.path().join("run"));
    let packing = &m[0]["packing"];
    assert_eq!(packing["examples"], 6, "{packing}");
    assert!(packing["padding_share"].as_f64().unwrap() < 0.5, "{packing}");
    let losses: Vec<f64> = m.iter().filter_map(|l| l["loss"].as_f64()).collect();
    assert_eq!(losses.len(), 8);
    assert!(losses[7] < losses[0] - 0.5, "the loss falls: {losses:?}");
    // The validation loss is the final model's mean loss over the trained
    // tokens of the validation examples, each computed alone.
    let eval_loss = m.iter().find_map(|l| l["eval_loss"].as_f64()).expect("an evaluation at step 8");
    let model =
        curate_trainer::pretrained::load(&whole.path().join("run/checkpoints/step-00000008"), Device::Cpu).unwrap();
    let manifest = Manifest::load(&chat_tokens().join("manifest.json")).unwrap();
    let validation =
        packing::read_examples(&chat_tokens(), &manifest, Split::Validation, ShardFormat::Megatron, 2011).unwrap();
    let (mut sum, mut count) = (0.0, 0i64);
    for e in validation {
        let n = e.tokens.len().min(256);
        let ids: Vec<i64> = e.tokens[..n].iter().map(|&t| i64::from(t)).collect();
        let targets: Vec<i64> =
            (0..n).map(|i| if i + 1 < n && e.mask[i + 1] == 1 { ids[i + 1] } else { IGNORE }).collect();
        let t = n as i64;
        let logits = tch::no_grad(|| model.model.forward(&Tensor::from_slice(&ids).view([1, t]), None));
        let targets = Tensor::from_slice(&targets).view([1, t]);
        sum += cross_entropy_sum(&logits, &targets).double_value(&[]);
        count += targets.ne(IGNORE).sum(tch::Kind::Int64).int64_value(&[]);
    }
    assert!(count > 0);
    let direct = sum / count as f64;
    assert!((eval_loss - direct).abs() <= 1e-4 * direct, "eval_loss {eval_loss} against {direct} computed directly");

    let killed = tempfile::tempdir().unwrap();
    let c = sft_config(killed.path(), training);
    let out = trainer().arg("train").arg(&c).env(curate_trainer::hooks::ABORT_AFTER_STEP, "6").output().unwrap();
    assert!(!out.status.success());
    train_ok(&c, &["--resume"]);
    assert_eq!(trajectory(&killed.path().join("run")), trajectory(&whole.path().join("run")));
    let a = std::fs::read(whole.path().join("run/checkpoints/step-00000008/model.safetensors")).unwrap();
    let b = std::fs::read(killed.path().join("run/checkpoints/step-00000008/model.safetensors")).unwrap();
    assert!(a == b, "the weights differ after resuming");

    // Unpacked, the same data needs a row per example, mostly padding.
    let unpacked = tempfile::tempdir().unwrap();
    let data = format!("path = \"{}\"\nseq_len = 256\npacking = false", chat_tokens().display());
    let c = config(
        unpacked.path(),
        "architecture = \"gpt2\"\nhidden_size = 32\nnum_layers = 1\nnum_heads = 2",
        &data,
        "max_steps = 3\nbatch_size = 2",
    );
    train_ok(&c, &[]);
    let m = metrics(&unpacked.path().join("run"));
    let p = &m[0]["packing"];
    assert_eq!(p["rows"], 6, "{p}");
    assert!(p["padding_share"].as_f64().unwrap() > packing["padding_share"].as_f64().unwrap(), "{p}");
    // Three steps of two rows are one epoch: the tokens counted are the examples', not the padding.
    let seen = m.iter().rev().find_map(|l| l["tokens"].as_u64()).unwrap();
    assert_eq!(seen, p["tokens"].as_u64().unwrap(), "{p}");
}

/// (loss, grad_norm) of every step.
fn losses(run: &Path) -> Vec<(f64, f64)> {
    metrics(run)
        .iter()
        .filter(|m| m.get("loss").is_some())
        .map(|m| (m["loss"].as_f64().unwrap(), m["grad_norm"].as_f64().unwrap()))
        .collect()
}

#[test]
fn two_ranks_weigh_every_trained_token_as_one_rank_does() {
    // Rows hold different numbers of trained tokens: a rank that divided by
    // its own count would weigh tokens differently from one process.
    let training = "max_steps = 6\nbatch_size = 4\nglobal_batch_size = 4\nlearning_rate = 3e-3\nwarmup_steps = 1";
    let single = tempfile::tempdir().unwrap();
    train_ok(&sft_config(single.path(), training), &[]);
    let two = tempfile::tempdir().unwrap();
    let c = sft_config(two.path(), &format!("{training}\nbatch_size = 2"));
    let out = trainer().arg("train").arg(&c).args(["--nproc-per-node", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (a, b) = (losses(&single.path().join("run")), losses(&two.path().join("run")));
    assert_eq!(a.len(), 6);
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        for (u, v, name) in [(x.0, y.0, "loss"), (x.1, y.1, "grad_norm")] {
            assert!((u - v).abs() <= 1e-4 * u.abs(), "step {}: {name} {u} on one rank, {v} on two", step + 1);
        }
    }
}
