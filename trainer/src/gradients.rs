//! `curate-train gradients`: one batch's loss and gradients, written beside
//! the weights that produced them, so that another implementation (Hugging
//! Face transformers, in `scripts/parity/trainer_grads.py`) can be checked
//! against ours on the same numbers.

use std::path::Path;

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::step;
use crate::train::Setup;

/// Writes `model.safetensors`, `config.json` (Hugging Face), `batch.safetensors`
/// (`input_ids`, `targets` (-100 where the loss skips), and for packed
/// examples `position_ids`), `gradients.safetensors` and `loss.json` into `out`.
pub fn dump(config: TrainConfig, out: &Path) -> anyhow::Result<f64> {
    let mut setup = Setup::new(config, None)?;
    crate::train::reference_pass(&mut setup, out)?;
    std::fs::create_dir_all(out)?;
    let indices: Vec<u64> = (0..setup.config.training.batch_size as u64).map(|i| i % setup.train.count()).collect();
    let batch = step::batch(&setup.train, &indices, setup.device)?;
    let weights = setup.weights();
    checkpoint::write_safetensors(&out.join("model.safetensors"), &weights)?;
    let loss = step::forward_backward(
        setup.model.as_ref(),
        setup.precision,
        &batch,
        1.0,
        setup.config.training.activation_checkpointing,
    );
    let grads: Vec<(String, tch::Tensor)> = weights.iter().map(|(n, t)| (n.clone(), t.grad())).collect();
    checkpoint::write_safetensors(&out.join("gradients.safetensors"), &grads)?;
    let mut tensors = vec![("input_ids".to_string(), batch.input), ("targets".to_string(), batch.targets)];
    if let Some(d) = &batch.dpo {
        tensors.push(("reference_logps".to_string(), d.reference.shallow_clone()));
        std::fs::write(out.join("dpo.json"), serde_json::Value::Object(d.stats.get().means("")).to_string())?;
    } else if let Some(packing) = batch.packing {
        tensors.push(("position_ids".to_string(), packing.positions));
    }
    checkpoint::write_safetensors(&out.join("batch.safetensors"), &tensors)?;
    let tokenizer = &setup.manifest.tokenizer;
    let hf = crate::pretrained::hf_config::write(
        &setup.config.model,
        tokenizer.bos_id,
        &tokenizer.eos_id.into_iter().collect::<Vec<_>>(),
        "float32",
    );
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&hf)?)?;
    std::fs::write(out.join("loss.json"), serde_json::json!({ "loss": loss }).to_string())?;
    Ok(loss)
}
