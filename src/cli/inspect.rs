//! Hidden commands that print what a component computes, for the parity
//! scripts in `scripts/parity/`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use serde::Serialize;

/// Reads JSON Lines on stdin and prints `json(text)` of each line's `text`
/// field (empty when missing), one line each.
fn for_each_text(json: impl Fn(&str) -> String) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            eprintln!("curate: error: stdin is not UTF-8 text");
            return ExitCode::from(2);
        };
        let text: String = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str().map(str::to_owned)))
            .unwrap_or_default();
        if writeln!(out, "{}", json(&text)).is_err() {
            // A closed pipe (`| head`) is not an error.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("serialisable")
}

/// `curate words`: each line's text, split into English words.
pub fn print_words() -> ExitCode {
    for_each_text(|text| to_json(&curate_filters::words::split_into_words(text)))
}

/// `curate minhash`: each line's MinHash signature (datatrove's defaults), or null.
pub fn print_minhash() -> ExitCode {
    let hasher = curate::dedup::minhash::MinHasher::new(Default::default()).expect("the defaults make signatures");
    for_each_text(|text| to_json(&hasher.signature(text)))
}

/// `curate fasttext-predict MODEL`: each line's text (newlines as spaces,
/// as datatrove sends it) predicted by a fastText model, every label, as
/// `{"labels": [...], "probs": [...]}` in fastText's order.
pub fn print_fasttext(model: &std::path::Path) -> ExitCode {
    let model = match std::fs::read(model)
        .map_err(|e| e.to_string())
        .and_then(|bytes| curate_filters::FastTextModel::from_bytes(&bytes).map_err(|e| e.to_string()))
    {
        Ok(model) => model,
        Err(e) => {
            eprintln!("curate: error: {}: {e}", model.display());
            return ExitCode::from(2);
        }
    };
    for_each_text(|text| {
        let predictions = model.predict(&text.replace('\n', " "), usize::MAX, 0.0);
        let labels: Vec<&str> = predictions.iter().map(|p| model.labels()[p.label].as_str()).collect();
        let probs: Vec<f32> = predictions.iter().map(|p| p.prob).collect();
        to_json(&serde_json::json!({"labels": labels, "probs": probs}))
    })
}
