//! Hugging Face model folders: imported models give transformers' logits,
//! exported ones load in transformers with the same logits and tokens, an
//! export re-imports bit for bit, and training starts from imported weights
//! with transformers' loss and gradients.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use curate_trainer::pretrained;
use tch::{Device, Kind, Tensor};

const CASES: &[&str] = &["gpt2", "llama-gqa", "llama-tied-sharded-bf16", "mistral-sliding-window", "qwen2"];

/// Two rows of ids over the whole vocabulary, longer than the sliding window.
fn ids() -> Vec<Vec<i64>> {
    (0..2).map(|r| (0..24).map(|i| (i * 83 + r * 997 + 5) % 2000).collect()).collect()
}

fn our_logits(dir: &Path) -> (pretrained::Loaded, Tensor) {
    let loaded = pretrained::load(dir, Device::Cpu).unwrap();
    let rows: Vec<Tensor> = ids().iter().map(|r| Tensor::from_slice(r)).collect();
    let logits = tch::no_grad(|| loaded.model.forward(&Tensor::stack(&rows, 0), None));
    (loaded, logits)
}

fn reference_logits(work: &Path, name: &str, dirs: &[PathBuf]) -> std::collections::HashMap<String, Tensor> {
    let out = work.join(name);
    let ids = serde_json::to_string(&ids()).unwrap();
    let mut args = vec!["logits", ids.as_str(), out.to_str().unwrap()];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    reference(&args);
    Tensor::read_safetensors(&out).unwrap().into_iter().collect()
}

#[test]
fn imported_and_exported_models_match_transformers() {
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("hf");
    reference(&["make", models.to_str().unwrap()]);
    let originals: Vec<PathBuf> = CASES.iter().map(|c| models.join(c)).collect();
    let theirs = reference_logits(work.path(), "original.safetensors", &originals);

    let tokenizer = manifest_dir().join("../fixtures/tokenizer.json");
    let mut exports = Vec::new();
    let mut imported = Vec::new();
    for (case, dir) in CASES.iter().zip(&originals) {
        let (loaded, ours) = our_logits(dir);
        let error = relative_error(&ours, &theirs[dir.to_str().unwrap()]);
        assert!(error <= 1e-4, "{case}: imported logits differ from transformers' by {error:e}");
        let export = work.path().join("exported").join(case);
        let out = trainer()
            .arg("export")
            .arg(dir)
            .arg("--output")
            .arg(&export)
            .arg("--tokenizer")
            .arg(&tokenizer)
            .args(if *case == "qwen2" { &["--max-shard-size", "200KB"][..] } else { &[] })
            .output()
            .unwrap();
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        exports.push(export);
        imported.push((loaded, ours));
    }

    let theirs = reference_logits(work.path(), "exported.safetensors", &exports);
    for ((case, export), (first, ours)) in CASES.iter().zip(&exports).zip(&imported) {
        let error = relative_error(ours, &theirs[export.to_str().unwrap()]);
        assert!(error <= 1e-4, "{case}: transformers on the export differs by {error:e}");
        let (again, again_logits) = our_logits(export);
        assert_eq!(
            serde_json::to_value(&again.config).unwrap(),
            serde_json::to_value(&first.config).unwrap(),
            "{case}: the config changed through export"
        );
        let a = pretrained::variables(&first.vs);
        let b = pretrained::variables(&again.vs);
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x.equal(y), "{case}: {name} changed through export and import");
        }
        assert!(again_logits.equal(ours), "{case}: re-imported logits are not bit-identical");
    }
    assert!(exports[4].join("model.safetensors.index.json").is_file(), "qwen2 was exported as shards");

    // `curate generate` takes a Hugging Face folder, with its own tokenizer or another.
    for (model, tokenizer) in [(&originals[1], Some(&tokenizer)), (&exports[3], None)] {
        let mut generate = trainer();
        generate.arg("generate").arg("--checkpoint").arg(model).args(["--prompt", "Call me", "--temperature", "0"]);
        if let Some(t) = tokenizer {
            generate.arg("--tokenizer").arg(t);
        }
        let out = generate.args(["--max-new-tokens", "5", "--device", "cpu"]).output().unwrap();
        assert!(out.status.success(), "{}: {}", model.display(), stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("Call me"));
    }

    // AutoTokenizer loads every export and encodes as the tokenizer itself does.
    let text = "Call me Ishmael. Some years ago, never mind how long precisely";
    let expected =
        tokenizers::Tokenizer::from_file(&tokenizer).unwrap().encode(text, false).unwrap().get_ids().to_vec();
    let mut args = vec!["tokenizer", text];
    args.extend(exports.iter().map(|d| d.to_str().unwrap()));
    let out = reference(&args);
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), CASES.len());
    for (case, line) in CASES.iter().zip(&lines) {
        let ids: Vec<u32> = line["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, expected, "{case}: AutoTokenizer encodes differently");
        assert!(line["eos"].is_string(), "{case}: the export names an end-of-sequence token: {line}");
    }
}

#[test]
fn training_from_an_imported_model_starts_from_its_loss_and_gradients() {
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("hf");
    reference(&["make", models.to_str().unwrap()]);
    for case in ["llama-gqa", "qwen2"] {
        let dir = work.path().join(case);
        std::fs::create_dir_all(&dir).unwrap();
        let model = format!("init_from = \"{}\"", models.join(case).display());
        let config = config(&dir, &model, "seq_len = 32", "batch_size = 2\nmax_steps = 1");
        let out = trainer().arg("gradients").arg(&config).arg("--out").arg(&dir).output().unwrap();
        assert!(out.status.success(), "{case}: {}", stderr(&out));
        let ours: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let reference_file = dir.join("reference.safetensors");
        reference(&[
            "loss",
            models.join(case).to_str().unwrap(),
            dir.join("batch.safetensors").to_str().unwrap(),
            reference_file.to_str().unwrap(),
        ]);
        let theirs: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&reference_file).unwrap().into_iter().collect();
        let loss = theirs["loss"].double_value(&[0]);
        assert!((ours - loss).abs() / loss <= 1e-4, "{case}: loss {ours} against transformers' {loss}");
        let grads: Vec<(String, Tensor)> = Tensor::read_safetensors(dir.join("gradients.safetensors")).unwrap();
        assert!(!grads.is_empty());
        for (name, g) in &grads {
            let error = relative_error(g, &theirs[name]);
            assert!(error <= 1e-4, "{case}: gradient of {name} differs by {error:e}");
        }
    }

    // Two steps of training write a checkpoint whose config.json keeps the
    // pretrained model's special tokens, and which exports again.
    let dir = work.path().join("train");
    std::fs::create_dir_all(&dir).unwrap();
    let model = format!("init_from = \"{}\"", models.join("qwen2").display());
    let config = config(&dir, &model, "seq_len = 32", "batch_size = 2\nmax_steps = 2");
    train_ok(&config, &[]);
    let checkpoint = dir.join("run/checkpoints/step-00000002");
    let hf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join("config.json")).unwrap()).unwrap();
    assert_eq!((hf["model_type"].as_str(), hf["bos_token_id"].as_u64()), (Some("qwen2"), Some(1)));
    let loss = metrics(&dir.join("run"))[0]["loss"].as_f64().unwrap();
    assert!(loss < 7.7, "the first step's loss {loss} is the imported model's, not a fresh one's (ln 2000 = 7.6)");

    // Every key of the model table but init_from is refused, by name.
    let refused = config_with(&dir, &format!("{model}\nhidden_size = 32"), "", "max_steps = 1", "");
    let out = train(&refused, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("model.hidden_size: comes from init_from's config.json"), "{}", stderr(&out));
}

#[test]
fn broken_model_folders_are_refused_by_name() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let load_error = || pretrained::load(dir, Device::Cpu).err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(load_error().contains("no model.safetensors or model.safetensors.index.json"), "{}", load_error());

    // Weights of a model with one tensor too many, then one missing.
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let described = pretrained::describe(dir).unwrap();
    let _model = curate_trainer::model::build(&vs, &described.model);
    let mut weights = pretrained::variables(&vs);
    weights.push(("model.layers.0.self_attn.q_proj.bias".into(), Tensor::zeros([16], (Kind::Float, Device::Cpu))));
    curate_trainer::checkpoint::write_safetensors(&dir.join("model.safetensors"), &weights).unwrap();
    assert!(load_error().contains("holds `model.layers.0.self_attn.q_proj.bias`, which the model"), "{}", load_error());
    weights.truncate(weights.len() - 2);
    curate_trainer::checkpoint::write_safetensors(&dir.join("model.safetensors"), &weights).unwrap();
    assert!(load_error().contains("no tensor `model.norm.weight`"), "{}", load_error());

    // An index that names a file outside the folder.
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = serde_json::json!({ "weight_map": { "model.norm.weight": "../elsewhere.safetensors" } });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    assert!(load_error().contains("is not a file name beside the index"), "{}", load_error());

    // The command line names the folder when it is neither a model nor a run.
    let out = trainer().arg("export").arg(dir.join("nothing")).arg("--output").arg(dir.join("x")).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nothing: no such folder"), "{}", stderr(&out));
}
