//! Hidden commands that print what a component computes, for the parity
//! scripts in `scripts/parity/`.

use std::process::ExitCode;

use super::fatal;

/// `curate words`: each stdin line's `text`, split into English words.
pub fn print_words() -> ExitCode {
    use std::io::{BufRead, Write};
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return fatal("stdin is not UTF-8 text") };
        let text: String = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str().map(str::to_owned)))
            .unwrap_or_default();
        let words = curate_filters::words::split_into_words(&text);
        if writeln!(out, "{}", serde_json::to_string(&words).expect("serialisable")).is_err() {
            // A closed pipe (`| head`) is not an error.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}

/// `curate minhash`: each stdin line's MinHash signature.
pub fn print_minhash() -> ExitCode {
    use std::io::{BufRead, Write};
    let hasher = curate::dedup::minhash::MinHasher::new(Default::default());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { return fatal("stdin is not UTF-8 text") };
        let text: String = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str().map(str::to_owned)))
            .unwrap_or_default();
        let signature = hasher.signature(&text);
        if writeln!(out, "{}", serde_json::to_string(&signature).expect("serialisable")).is_err() {
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}
