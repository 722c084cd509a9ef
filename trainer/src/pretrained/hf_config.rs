//! Hugging Face's `config.json`, both ways: what curate can represent of a
//! LLaMA, Mistral, Qwen2 or GPT-2 config (and a refusal naming the key for
//! what it cannot), and the config.json of a curate model, which
//! transformers' `AutoModelForCausalLM` loads.
//!
//! Both spellings of the rotary settings are read: transformers 4's
//! `rope_theta` + `rope_scaling` (what model folders on the Hub carry) and
//! transformers 5's `rope_parameters`. Export writes the first, which both
//! versions, vLLM and lm-evaluation-harness read.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::config::{Architecture, ModelConfig, RopeScaling};

/// A config.json that does not parse or holds what curate cannot build.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a JSON object: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Unsupported { path: PathBuf, key: String, message: String },
}

/// A model config and the special token ids the folder names.
#[derive(Debug, Clone)]
pub struct Imported {
    pub model: ModelConfig,
    pub bos_id: Option<u32>,
    /// Every end-of-sequence id (LLaMA 3's instruct models have several).
    pub eos_ids: Vec<u32>,
}

pub fn read(dir: &Path) -> Result<Imported, ImportError> {
    let (map, path) = object(dir)?;
    from_json(&Keys { map: &map, path: &path })
}

/// The special token ids of a config.json alone: `(bos, eos...)`.
pub fn special_ids(dir: &Path) -> Result<(Option<u32>, Vec<u32>), ImportError> {
    let (map, path) = object(dir)?;
    Ok(ids(&Keys { map: &map, path: &path }))
}

fn object(dir: &Path) -> Result<(Map<String, Value>, PathBuf), ImportError> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|source| ImportError::Io { path: path.clone(), source })?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| ImportError::Json { path: path.clone(), message: e.to_string() })?;
    match value {
        Value::Object(map) => Ok((map, path)),
        _ => Err(ImportError::Json { path, message: "the top level is not an object".into() }),
    }
}

fn ids(k: &Keys) -> (Option<u32>, Vec<u32>) {
    let id = |v: &Value| v.as_u64().map(|n| n as u32);
    let bos_id = k.get("bos_token_id").and_then(id);
    let eos_ids = match k.get("eos_token_id") {
        None => Vec::new(),
        Some(Value::Array(ids)) => ids.iter().filter_map(id).collect(),
        Some(v) => id(v).into_iter().collect(),
    };
    (bos_id, eos_ids)
}

struct Keys<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
}

impl Keys<'_> {
    fn refuse<T>(&self, key: &str, message: impl Into<String>) -> Result<T, ImportError> {
        Err(ImportError::Unsupported { path: self.path.to_owned(), key: key.to_owned(), message: message.into() })
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, ImportError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n as usize)),
                None => self.refuse(key, format!("{v} is not a non-negative integer")),
            },
        }
    }

    fn need(&self, key: &str) -> Result<usize, ImportError> {
        match self.usize(key)? {
            Some(n) => Ok(n),
            None => self.refuse(key, "missing"),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64, ImportError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) => Ok(x),
                None => self.refuse(key, format!("{v} is not a number")),
            },
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ImportError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.as_bool() {
                Some(b) => Ok(b),
                None => self.refuse(key, format!("{v} is not true or false")),
            },
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Fails when `key` is set to anything but `expected` (or absent).
    fn only(&self, key: &str, expected: &Value, why: &str) -> Result<(), ImportError> {
        match self.get(key) {
            Some(v) if v != expected => self.refuse(key, format!("{v}: {why}")),
            _ => Ok(()),
        }
    }
}

fn from_json(k: &Keys) -> Result<Imported, ImportError> {
    let model_type = k.str("model_type").unwrap_or_default().to_owned();
    let model = match model_type.as_str() {
        "gpt2" => gpt2(k)?,
        "llama" | "mistral" | "qwen2" => llama(k, &model_type)?,
        "" => return k.refuse("model_type", "missing: curate reads LLaMA, Mistral, Qwen2 and GPT-2 configs"),
        other => {
            return k.refuse("model_type", format!("{other:?} is not one of llama, mistral, qwen2, gpt2"));
        }
    };
    let (bos_id, eos_ids) = ids(k);
    Ok(Imported { model, bos_id, eos_ids })
}

fn base(k: &Keys, architecture: Architecture) -> Result<ModelConfig, ImportError> {
    Ok(ModelConfig {
        init_from: None,
        architecture,
        vocab_size: Some(k.need("vocab_size")?),
        hidden_size: 0,
        num_layers: 0,
        num_heads: 0,
        num_kv_heads: None,
        head_dim: None,
        qkv_bias: false,
        intermediate_size: None,
        max_position_embeddings: 0,
        rope_theta: 10000.0,
        rope_scaling: None,
        norm_eps: 1e-5,
        tie_embeddings: None,
        sliding_window: None,
        initializer_range: k.f64("initializer_range", 0.02)?,
    })
}

fn gpt2(k: &Keys) -> Result<ModelConfig, ImportError> {
    let mut m = base(k, Architecture::Gpt2)?;
    m.hidden_size = k.need("n_embd")?;
    m.num_layers = k.need("n_layer")?;
    m.num_heads = k.need("n_head")?;
    m.intermediate_size = Some(k.usize("n_inner")?.unwrap_or(4 * m.hidden_size));
    m.max_position_embeddings = k.need("n_positions")?;
    m.norm_eps = k.f64("layer_norm_epsilon", 1e-5)?;
    m.tie_embeddings = Some(k.bool("tie_word_embeddings", true)?);
    match k.str("activation_function").unwrap_or("gelu_new") {
        "gelu_new" | "gelu_pytorch_tanh" => {}
        other => return k.refuse("activation_function", format!("{other:?}: curate's GPT-2 uses GELU's tanh form")),
    }
    k.only("scale_attn_weights", &json!(true), "curate's attention always scales by 1/sqrt(head size)")?;
    k.only("scale_attn_by_inverse_layer_idx", &json!(false), "per-layer attention scaling is not supported")?;
    k.only("add_cross_attention", &json!(false), "cross-attention is not supported")?;
    Ok(m)
}

fn llama(k: &Keys, model_type: &str) -> Result<ModelConfig, ImportError> {
    let mut m = base(k, Architecture::Llama)?;
    m.hidden_size = k.need("hidden_size")?;
    m.num_layers = k.need("num_hidden_layers")?;
    m.num_heads = k.need("num_attention_heads")?;
    m.num_kv_heads = k.usize("num_key_value_heads")?;
    m.intermediate_size = Some(k.need("intermediate_size")?);
    m.max_position_embeddings = k.need("max_position_embeddings")?;
    m.norm_eps = k.f64("rms_norm_eps", 1e-6)?;
    m.tie_embeddings = Some(k.bool("tie_word_embeddings", false)?);
    m.head_dim = k.usize("head_dim")?.filter(|&d| m.num_heads == 0 || d * m.num_heads != m.hidden_size);
    k.only("hidden_act", &json!("silu"), "curate's LLaMA MLP is SwiGLU (silu)")?;
    k.only("mlp_bias", &json!(false), "biases in the MLP are not supported")?;
    match model_type {
        // Qwen2 is LLaMA with biases on q, k and v, always.
        "qwen2" => m.qkv_bias = true,
        _ => k.only("attention_bias", &json!(false), "biases on every attention projection are not supported")?,
    }
    (m.rope_theta, m.rope_scaling) = rope(k)?;
    m.sliding_window = match model_type {
        "mistral" => k.usize("sliding_window")?,
        "qwen2" if k.bool("use_sliding_window", false)? => {
            // Qwen2 slides only on layers from max_window_layers on.
            if k.usize("max_window_layers")?.unwrap_or(0) != 0 {
                return k.refuse("max_window_layers", "a sliding window on some layers only is not supported");
            }
            k.usize("sliding_window")?
        }
        _ => None,
    };
    if let Some(Value::Array(types)) = k.get("layer_types") {
        let expected = if m.sliding_window.is_some() { "sliding_attention" } else { "full_attention" };
        if let Some(other) = types.iter().find(|t| t.as_str() != Some(expected)) {
            return k.refuse("layer_types", format!("{other}: curate gives every layer {expected}"));
        }
    }
    Ok(m)
}

/// rope_theta and the scaling kind, from either spelling.
fn rope(k: &Keys) -> Result<(f64, Option<RopeScaling>), ImportError> {
    let (params, at) = match (k.get("rope_parameters"), k.get("rope_scaling")) {
        (Some(p), _) => (Some(p), "rope_parameters"),
        (None, Some(s)) => (Some(s), "rope_scaling"),
        (None, None) => (None, "rope_scaling"),
    };
    let empty = Map::new();
    let params = match params {
        None => &empty,
        Some(Value::Object(p)) => p,
        Some(other) => return k.refuse(at, format!("{other} is not an object")),
    };
    let p = Keys { map: params, path: k.path };
    let theta = match params.get("rope_theta") {
        Some(_) => p.f64("rope_theta", 10000.0)?,
        None => k.f64("rope_theta", 10000.0)?,
    };
    let kind = p.str("rope_type").or_else(|| p.str("type")).unwrap_or("default");
    let factor = |key: &str| match params.get(key).and_then(Value::as_f64) {
        Some(x) if x > 0.0 => Ok(x),
        _ => k.refuse(&format!("{at}.{key}"), "missing or not a positive number"),
    };
    let scaling = match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear { factor: factor("factor")? }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: factor("factor")?,
            low_freq_factor: factor("low_freq_factor")?,
            high_freq_factor: factor("high_freq_factor")?,
            original_max_position_embeddings: factor("original_max_position_embeddings")? as usize,
        }),
        other => {
            return k.refuse(
                &format!("{at}.rope_type"),
                format!("{other:?}: curate computes the default, linear and llama3 kinds only"),
            )
        }
    };
    Ok((theta, scaling))
}

/// The config.json of a curate model: `AutoModelForCausalLM` builds the
/// same network from it. A LLaMA with q/k/v biases is written as Qwen2, one
/// with a sliding window as Mistral.
pub fn write(m: &ModelConfig, bos_id: Option<u32>, eos_ids: &[u32], dtype: &str) -> Value {
    let eos = match eos_ids {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    match m.architecture {
        Architecture::Gpt2 => json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": m.vocab(),
            "n_positions": m.max_position_embeddings,
            "n_embd": m.hidden_size,
            "n_layer": m.num_layers,
            "n_head": m.num_heads,
            "n_inner": m.intermediate(),
            "activation_function": "gelu_new",
            "layer_norm_epsilon": m.norm_eps,
            "initializer_range": m.initializer_range,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "tie_word_embeddings": m.tied(),
            "bos_token_id": bos_id.or(eos_ids.first().copied()),
            "eos_token_id": eos,
            "torch_dtype": dtype,
        }),
        Architecture::Llama => {
            let (architecture, model_type) = match (m.qkv_bias, m.sliding_window) {
                (true, _) => ("Qwen2ForCausalLM", "qwen2"),
                (false, Some(_)) => ("MistralForCausalLM", "mistral"),
                (false, None) => ("LlamaForCausalLM", "llama"),
            };
            let scaling = match m.rope_scaling {
                None => Value::Null,
                Some(RopeScaling::Linear { factor }) => json!({ "rope_type": "linear", "factor": factor }),
                Some(RopeScaling::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings,
                }) => json!({
                    "rope_type": "llama3",
                    "factor": factor,
                    "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings,
                }),
            };
            let mut config = json!({
                "architectures": [architecture],
                "model_type": model_type,
                "vocab_size": m.vocab(),
                "hidden_size": m.hidden_size,
                "intermediate_size": m.intermediate(),
                "num_hidden_layers": m.num_layers,
                "num_attention_heads": m.num_heads,
                "num_key_value_heads": m.kv_heads(),
                "head_dim": m.head_dim(),
                "max_position_embeddings": m.max_position_embeddings,
                "rope_theta": m.rope_theta,
                "rope_scaling": scaling,
                "rms_norm_eps": m.norm_eps,
                "sliding_window": m.sliding_window,
                "hidden_act": "silu",
                "attention_dropout": 0.0,
                "initializer_range": m.initializer_range,
                "tie_word_embeddings": m.tied(),
                "bos_token_id": bos_id,
                "eos_token_id": eos,
                "torch_dtype": dtype,
            });
            let extra = match model_type {
                "qwen2" => json!({
                    "use_sliding_window": m.sliding_window.is_some(),
                    "max_window_layers": 0,
                }),
                "mistral" => json!({}),
                _ => json!({ "attention_bias": false, "mlp_bias": false }),
            };
            if let (Value::Object(c), Value::Object(e)) = (&mut config, extra) {
                c.extend(e);
            }
            config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(config: Value) -> Result<Imported, ImportError> {
        let Value::Object(map) = config else { unreachable!() };
        from_json(&Keys { map: &map, path: Path::new("m/config.json") })
    }

    fn llama(extra: Value) -> Value {
        let mut c = json!({
            "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 32,
        });
        if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
            c.extend(e);
        }
        c
    }

    fn refusal(config: Value) -> String {
        import(config).unwrap_err().to_string()
    }

    #[test]
    fn both_spellings_of_the_rotary_settings_are_read() {
        let old = import(llama(json!({
            "rope_theta": 500000.0,
            "rope_scaling": { "type": "linear", "factor": 4.0 },
        })))
        .unwrap();
        assert_eq!(
            (old.model.rope_theta, old.model.rope_scaling),
            (500000.0, Some(RopeScaling::Linear { factor: 4.0 }))
        );
        let new = import(llama(json!({ "rope_parameters": { "rope_type": "default", "rope_theta": 1e6 } }))).unwrap();
        assert_eq!((new.model.rope_theta, new.model.rope_scaling), (1e6, None));
    }

    #[test]
    fn what_curate_cannot_build_is_refused_by_key() {
        let yarn = refusal(llama(json!({ "rope_scaling": { "rope_type": "yarn", "factor": 4.0 } })));
        assert!(yarn.starts_with("m/config.json: rope_scaling.rope_type: \"yarn\""), "{yarn}");
        let phi = refusal(llama(json!({ "model_type": "phi3" })));
        assert!(phi.starts_with("m/config.json: model_type: \"phi3\" is not one of"), "{phi}");
        assert!(refusal(llama(json!({ "hidden_act": "gelu" }))).contains("hidden_act: \"gelu\""));
        assert!(refusal(llama(json!({ "attention_bias": true }))).contains("attention_bias: true"));
        let partial = llama(json!({ "model_type": "qwen2", "use_sliding_window": true, "max_window_layers": 1 }));
        assert!(refusal(partial).contains("max_window_layers: a sliding window on some layers only"));
        assert!(refusal(llama(json!({ "num_hidden_layers": null }))).contains("num_hidden_layers: missing"));
        let gpt2 = json!({ "model_type": "gpt2", "vocab_size": 50, "n_embd": 16, "n_layer": 1, "n_head": 2,
                           "n_positions": 32, "scale_attn_by_inverse_layer_idx": true });
        assert!(refusal(gpt2).contains("scale_attn_by_inverse_layer_idx: true"));
    }

    #[test]
    fn special_tokens_and_families_map_both_ways() {
        let m =
            import(llama(json!({ "model_type": "mistral", "sliding_window": null, "eos_token_id": [7, 9] }))).unwrap();
        assert_eq!((m.model.sliding_window, m.eos_ids.clone()), (None, vec![7, 9]));
        // A Mistral without a window is a LLaMA, and is written as one.
        assert_eq!(write(&m.model, None, &m.eos_ids, "float32")["model_type"], "llama");
        let q = import(llama(json!({ "model_type": "qwen2", "use_sliding_window": false, "sliding_window": 4096,
                                     "max_window_layers": 21 })))
        .unwrap();
        assert!(q.model.qkv_bias && q.model.sliding_window.is_none());
        let written = write(&q.model, Some(1), &[2], "bfloat16");
        assert_eq!(
            (written["model_type"].as_str(), written["torch_dtype"].as_str()),
            (Some("qwen2"), Some("bfloat16"))
        );
    }
}
