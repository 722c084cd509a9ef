//! LoRA: with the same initial adapters, curate's loss and gradients equal
//! PEFT's on the same base model and batch; curate's adapter checkpoints
//! load in PEFT with the same logits, and `export --merge` equals PEFT's
//! merge_and_unload; only the adapters are trained and saved; a run with
//! adapter dropout resumes bit for bit.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::*;
use curate_trainer::pretrained;
use tch::{Device, Tensor};

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("../fixtures").join(name)
}

struct Case {
    base: &'static str,
    targets: &'static str,
    data: String,
    tokenizer: PathBuf,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            base: "llama-chat",
            targets: "q_proj,v_proj,o_proj,down_proj",
            data: format!("path = \"{}\"\nseq_len = 256", fixture("chat/tokens").display()),
            tokenizer: fixture("chat"),
        },
        Case {
            base: "gpt2",
            targets: "c_attn,c_proj,c_fc",
            data: "seq_len = 64".into(),
            tokenizer: fixture("tokenizer.json"),
        },
    ]
}

fn read(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn lora_matches_peft_and_round_trips_through_its_format() {
    let work = tempfile::tempdir().unwrap();
    let hf = work.path().join("hf");
    reference(&["make", hf.to_str().unwrap()]);
    reference(&["make", hf.to_str().unwrap(), "chat"]);
    for case in cases() {
        let base = hf.join(case.base);
        let adapter = work.path().join(format!("{}-adapter", case.base));
        reference(&["lora-make", base.to_str().unwrap(), adapter.to_str().unwrap(), case.targets]);

        // One step's loss and gradients, from PEFT's initial adapters.
        let dir = work.path().join(case.base);
        std::fs::create_dir_all(&dir).unwrap();
        let model = format!("init_from = \"{}\"", base.display());
        let lora = format!("init_from = \"{}\"", adapter.display());
        let config = config_with_lora(&dir, &model, &case.data, "batch_size = 2\nmax_steps = 2", &lora);
        let out = trainer().arg("gradients").arg(&config).arg("--out").arg(&dir).output().unwrap();
        assert!(out.status.success(), "{}: {}", case.base, stderr(&out));
        let ours: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let reference_file = dir.join("peft.safetensors");
        reference(&[
            "lora-loss",
            base.to_str().unwrap(),
            adapter.to_str().unwrap(),
            dir.join("batch.safetensors").to_str().unwrap(),
            reference_file.to_str().unwrap(),
        ]);
        let theirs = read(&reference_file);
        let loss = theirs["loss"].double_value(&[0]);
        assert!((ours - loss).abs() <= 1e-5 * loss, "{}: loss {ours} against PEFT's {loss}", case.base);
        let grads = read(&dir.join("gradients.safetensors"));
        assert_eq!(grads.len() + 1, theirs.len(), "{}: the adapters alone have gradients", case.base);
        for (name, g) in &grads {
            assert!(name.contains(".lora_"), "{name} is not an adapter weight");
            let error = relative_error(g, &theirs[name]);
            assert!(error <= 1e-5, "{}: gradient of {name} differs from PEFT's by {error:e}", case.base);
        }

        // Two steps of training: the checkpoint is a PEFT adapter.
        train_ok(&config, &[]);
        let checkpoint = dir.join("run/checkpoints/step-00000002");
        assert!(!checkpoint.join("model.safetensors").exists(), "the frozen base is not saved again");
        let optimizer: usize = Tensor::read_safetensors(checkpoint.join("optimizer.safetensors")).unwrap().len();
        assert_eq!(optimizer, 2 * grads.len(), "AdamW's moments are the adapters' only");
        let exported = work.path().join(format!("{}-exported", case.base));
        let merged = work.path().join(format!("{}-merged", case.base));
        for (out, extra) in [(&exported, None), (&merged, Some("--merge"))] {
            let result = trainer()
                .arg("export")
                .arg(&checkpoint)
                .arg("--output")
                .arg(out)
                .args(extra)
                .arg("--tokenizer")
                .arg(&case.tokenizer)
                .output()
                .unwrap();
            assert!(result.status.success(), "{}", stderr(&result));
        }
        assert!(exported.join("adapter_model.safetensors").is_file() && !exported.join("config.json").exists());

        let ids: Vec<Vec<i64>> = (0..2).map(|r| (0..20).map(|i| (i * 131 + r * 7 + 3) % 1999).collect()).collect();
        let ids_json = serde_json::to_string(&ids).unwrap();
        let logits_file = work.path().join(format!("{}-logits.safetensors", case.base));
        reference(&[
            "lora-logits",
            base.to_str().unwrap(),
            exported.to_str().unwrap(),
            &ids_json,
            logits_file.to_str().unwrap(),
        ]);
        let theirs = read(&logits_file);
        let rows: Vec<Tensor> = ids.iter().map(|r| Tensor::from_slice(r)).collect();
        let input = Tensor::stack(&rows, 0);
        for (folder, key, what) in [
            (&checkpoint, "adapted", "curate's checkpoint against PEFT on the exported adapter"),
            (&exported, "adapted", "the exported adapter, loaded by curate, against PEFT"),
            (&merged, "merged", "export --merge against PEFT's merge_and_unload"),
        ] {
            let loaded = pretrained::load(folder, Device::Cpu).unwrap();
            let ours = tch::no_grad(|| loaded.model.forward(&input, None));
            let error = relative_error(&ours, &theirs[key]);
            assert!(error <= 1e-5, "{}: {what}: logits differ by {error:e}", case.base);
        }
    }
}

fn config_with_lora(dir: &Path, model: &str, data: &str, training: &str, lora: &str) -> PathBuf {
    let path = config(dir, model, data, training);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("[lora]\n{lora}\n"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn lora_trains_only_adapters_in_less_memory_and_resumes_with_dropout_bit_for_bit() {
    let work = tempfile::tempdir().unwrap();
    let hf = work.path().join("hf");
    reference(&["make", hf.to_str().unwrap(), "chat"]);
    let model = format!("init_from = \"{}\"", hf.join("llama-chat").display());
    let data = format!("path = \"{}\"\nseq_len = 256", fixture("chat/tokens").display());
    let training = "max_steps = 6\nbatch_size = 2\ncheckpoint_interval = 3\nlearning_rate = 1e-3";
    let lora = "rank = 4\nalpha = 16\ndropout = 0.1\ntarget_modules = [\"all-linear\"]";

    let full = work.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    train_ok(&config(&full, &model, &data, training), &[]);
    let whole = work.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    train_ok(&config_with_lora(&whole, &model, &data, training, lora), &[]);
    let last = |dir: &Path| metrics(&dir.join("run")).into_iter().rfind(|m| m.get("loss").is_some()).unwrap();
    let (f, l) = (last(&full), last(&whole));
    let state = |m: &serde_json::Value| m["optimizer_state_bytes"].as_f64().unwrap();
    assert!(
        state(&l) < 0.1 * state(&f),
        "LoRA's optimizer state {} against full fine-tuning's {}",
        state(&l),
        state(&f)
    );
    let grads = |m: &serde_json::Value| m["gradient_bytes"].as_f64().unwrap();
    assert!(grads(&l) < 0.1 * grads(&f));
    // The base stays as it was: only adapters changed.
    let base = pretrained::load(&hf.join("llama-chat"), Device::Cpu).unwrap();
    let trained = pretrained::load(&whole.join("run/checkpoints/step-00000006"), Device::Cpu).unwrap();
    let adapted: Vec<(String, Tensor)> = pretrained::variables(&trained.vs);
    for (name, w) in pretrained::variables(&base.vs) {
        let (_, t) = adapted.iter().find(|(n, _)| *n == name).unwrap();
        assert!(w.equal(t), "{name} changed under LoRA");
    }

    let killed = work.path().join("killed");
    std::fs::create_dir_all(&killed).unwrap();
    let c = config_with_lora(&killed, &model, &data, training, lora);
    let out = trainer().arg("train").arg(&c).env(curate_trainer::hooks::ABORT_AFTER_STEP, "4").output().unwrap();
    assert!(!out.status.success());
    train_ok(&c, &["--resume"]);
    assert_eq!(trajectory(&killed.join("run")), trajectory(&whole.join("run")));
    let a = std::fs::read(whole.join("run/checkpoints/step-00000006/adapter_model.safetensors")).unwrap();
    let b = std::fs::read(killed.join("run/checkpoints/step-00000006/adapter_model.safetensors")).unwrap();
    assert!(a == b, "the adapters differ after resuming");
}

#[test]
fn a_bf16_base_halves_the_weights_and_trains_as_the_fp32_base_does_under_bf16_autocast() {
    let work = tempfile::tempdir().unwrap();
    let hf = work.path().join("hf");
    reference(&["make", hf.to_str().unwrap(), "chat"]);
    let model = format!("init_from = \"{}\"", hf.join("llama-chat").display());
    let data = format!("path = \"{}\"\nseq_len = 256", fixture("chat/tokens").display());
    let training = "max_steps = 4\nbatch_size = 2\nlearning_rate = 1e-3\nbf16 = true";
    let run = |name: &str, lora: &str| {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        train_ok(&config_with_lora(&dir, &model, &data, training, lora), &[]);
        metrics(&dir.join("run")).into_iter().filter(|m| m.get("loss").is_some()).collect::<Vec<_>>()
    };
    let fp32 = run("fp32", "rank = 4");
    let bf16 = run("bf16", "rank = 4\nbase_bf16 = true");
    let bytes = |m: &[serde_json::Value]| m[0]["weight_bytes"].as_f64().unwrap();
    assert!(bytes(&bf16) < 0.55 * bytes(&fp32), "weights {} against {}", bytes(&bf16), bytes(&fp32));
    for (a, b) in fp32.iter().zip(&bf16) {
        let (x, y) = (a["loss"].as_f64().unwrap(), b["loss"].as_f64().unwrap());
        assert!((x - y).abs() <= 2e-2 * x, "step {}: loss {y} with a bf16 base, {x} with fp32", a["step"]);
    }
    let c = config_with_lora(&work.path().join("fp32"), &model, &data, "max_steps = 1", "base_bf16 = true");
    let out = train(&c, &[]);
    assert!(stderr(&out).contains("lora.base_bf16: needs training.bf16 = true"), "{}", stderr(&out));
}

#[test]
fn lora_settings_that_cannot_work_are_refused_by_key() {
    let work = tempfile::tempdir().unwrap();
    let data = "seq_len = 64";
    let refused = |model: &str, lora: &str, training: &str| {
        let c = config_with_lora(work.path(), model, data, training, lora);
        let out = train(&c, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(refused(GPT2, "rank = 4", "max_steps = 1").contains("lora: adapters train on a pretrained model"));
    assert!(refused(LLAMA, "target_modules = [\"c_attn\"]", "max_steps = 1")
        .contains("lora.target_modules: \"c_attn\" is not one of q_proj"));
    assert!(refused(LLAMA, "rank = 0", "max_steps = 1").contains("lora.rank: must be at least 1"));
}
