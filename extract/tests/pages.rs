//! html_extract on real pages (fixtures/html/: two pages of the
//! article-extraction benchmark with their ground truth): the article is
//! found and the boilerplate left out; and a property test: pages mutated
//! every which way (cut anywhere, tags and bytes inserted, nesting up to the
//! bound) never panic or overflow a 2 MiB stack, as a worker thread has.

use std::io::Read;
use std::path::PathBuf;

use curate_extract::HtmlExtractConfig;
use curate_filters::{Document, Filter, FilterConfig, Measure, Verdict};

fn fixtures() -> PathBuf {
    let root: PathBuf =
        std::env::var_os("CARGO_MANIFEST_DIR").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    root.join("../fixtures/html")
}

fn pages() -> Vec<(String, String)> {
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("ground-truth.json")).unwrap()).unwrap();
    truth
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, v)| {
            let mut html = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(fixtures().join(format!("{id}.html.gz"))).unwrap())
                .read_to_string(&mut html)
                .unwrap();
            (html, v["articleBody"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn words(text: &str) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for w in text.split_whitespace() {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn real_articles_are_extracted_and_their_boilerplate_left_out() {
    let f = serde_json::from_value::<HtmlExtractConfig>(serde_json::json!({})).unwrap().build().unwrap();
    for (html, truth) in pages() {
        let mut fields = Vec::new();
        let Verdict::Rewrite(text) = f.filter(&Document::text_only(&html), Measure::Metadata(&mut fields)) else {
            panic!("no text");
        };
        // Word-bag precision and recall against the hand-made article body.
        let (ours, theirs) = (words(&text), words(&truth));
        let common: usize = ours.iter().map(|(w, n)| (*n).min(*theirs.get(w).unwrap_or(&0))).sum();
        let (precision, recall) = (
            common as f64 / ours.values().sum::<usize>() as f64,
            common as f64 / theirs.values().sum::<usize>() as f64,
        );
        assert!(precision > 0.85 && recall > 0.9, "precision {precision:.3}, recall {recall:.3}:\n{text}");
        assert!(fields[0].as_str().is_some_and(|t| !t.is_empty()), "a title: {fields:?}");
    }
}

/// A small deterministic generator, so that a failure names its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

fn mutate(html: &str, rng: &mut Rng) -> String {
    let mut s = html.to_owned();
    let at = |s: &str, rng: &mut Rng| {
        let mut i = rng.next(s.len() + 1);
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    for _ in 0..1 + rng.next(4) {
        match rng.next(6) {
            0 => {
                let i = at(&s, rng);
                s.truncate(i);
            }
            1 => {
                let i = at(&s, rng);
                s.insert_str(
                    i,
                    ["<div>", "</p>", "<", ">", "<!--", "<script>", "&#x", "<table><tr><td>", "\u{0}"][rng.next(9)],
                );
            }
            2 => {
                let (i, j) = (at(&s, rng), at(&s, rng));
                let (i, j) = (i.min(j), i.max(j));
                s.replace_range(i..j, "");
            }
            3 => {
                let depth = rng.next(480);
                let i = at(&s, rng);
                s.insert_str(
                    i,
                    &format!("{}deep{}", "<div><span>".repeat(depth / 2), "</span></div>".repeat(depth / 2)),
                );
            }
            4 => {
                let (i, j) = (at(&s, rng), at(&s, rng));
                let piece = s[i.min(j)..i.max(j)].to_owned();
                let k = at(&s, rng);
                s.insert_str(k, &piece);
            }
            _ => s = s.replace("</", "<"),
        }
    }
    s
}

#[test]
fn mutated_pages_never_panic_or_overflow_a_worker_stack() {
    let pages = pages();
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let f = serde_json::from_value::<HtmlExtractConfig>(serde_json::json!({})).unwrap().build().unwrap();
            let mut verdicts = [0usize; 2];
            for seed in 0..120u64 {
                let mut rng = Rng(seed);
                let (html, _) = &pages[seed as usize % pages.len()];
                let mutated = mutate(html, &mut rng);
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    f.filter(&Document::text_only(&mutated), Measure::Metadata(&mut Vec::new()))
                }));
                match outcome {
                    Ok(Verdict::Rewrite(_)) => verdicts[0] += 1,
                    Ok(_) => verdicts[1] += 1,
                    Err(_) => panic!("seed {seed}: the extractor panicked"),
                }
            }
            // Nesting just under the bound, in every mode.
            let deep = format!("<html><body>{}x{}</body></html>", "<div>".repeat(500), "</div>".repeat(500));
            let full = serde_json::from_value::<HtmlExtractConfig>(serde_json::json!({"mode": "full"}))
                .unwrap()
                .build()
                .unwrap();
            for f in [&f, &full] {
                let _ = f.filter(&Document::text_only(&deep), Measure::Metadata(&mut Vec::new()));
            }
            verdicts
        })
        .unwrap();
    let verdicts = handle.join().expect("no stack overflow or panic on a 2 MiB stack");
    assert!(verdicts[0] > 60, "most mutants still have text: {verdicts:?}");
}
