//! `curate mix`: a three-source recipe lands on its token shares, is
//! byte-identical across thread counts, and a source that grows changes
//! nothing in the others.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::util::*;

/// Three sources: `a` and `b` plain, `c` narrowed by a condition.
fn sources(dir: &Path) -> PathBuf {
    let root = dir.join("sources");
    for (name, n, seed) in [("a", 400, 1), ("b", 50, 2), ("c", 300, 3)] {
        fs::create_dir_all(root.join(name)).unwrap();
        let docs: Vec<Value> = generate_docs(n, seed)
            .into_iter()
            .map(|mut d| {
                d["id"] = format!("{name}-{}", d["id"].as_str().unwrap()).into();
                d
            })
            .collect();
        write_jsonl(&root.join(name).join("part-0.jsonl"), &docs);
    }
    root
}

fn recipe(dir: &Path, sources: &Path, out: &Path) -> PathBuf {
    let path = dir.join(format!("mix-{}.toml", out.file_name().unwrap().to_string_lossy()));
    fs::write(
        &path,
        format!(
            "seed = 7\ntokenizer = \"{tok}\"\ntotal_tokens = 60000\n\
             [[source]]\nname = \"a\"\npath = \"{s}/a\"\nweight = 0.5\n\
             [[source]]\nname = \"b\"\npath = \"{s}/b\"\nweight = 0.3\n\
             [[source]]\nname = \"c\"\npath = \"{s}/c\"\nwhere = \"n >= 100\"\nweight = 0.2\n\
             [output]\npath = \"{out}\"\n\
             [tokenize]\ntokenizer = \"{tok}\"\nshard_tokens = 1000000\n",
            tok = root().join("fixtures/tokenizer.json").display(),
            s = sources.display(),
            out = out.display()
        ),
    )
    .unwrap();
    path
}

fn mix(recipe: &Path, threads: &str) -> Value {
    let o = curate().args(["mix", "--progress", "none", "--threads", threads]).arg(recipe).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = fs::read_to_string(recipe).unwrap();
    let out = out.lines().find_map(|l| l.strip_prefix("path = \"").filter(|p| !p.contains("sources"))).unwrap();
    serde_json::from_slice(&fs::read(Path::new(out.trim_end_matches('"')).join("mix.json")).unwrap()).unwrap()
}

/// Every Parquet shard under `dir`, by path relative to it.
fn shards(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.contains("/rejected/"))
        .map(|f| (Path::new(&f).strip_prefix(dir).unwrap().display().to_string(), fs::read(&f).unwrap()))
        .collect()
}

/// Tokens of a folder as `curate tokenize` counts them (no end-of-text token).
fn tokens_of(folder: &Path, scratch: &Path) -> u64 {
    let o = curate()
        .args(["tokenize", "--progress", "none", "--no-eos", "--tokenizer"])
        .arg(root().join("fixtures/tokenizer.json"))
        .arg("--input")
        .arg(folder)
        .arg("--output")
        .arg(scratch)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let stats: Value = serde_json::from_slice(&fs::read(scratch.join("stats.json")).unwrap()).unwrap();
    stats["tokens"].as_u64().unwrap()
}

#[test]
fn a_mix_lands_on_its_shares_reproducibly_and_a_growing_source_leaves_the_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources(dir.path());
    let first = dir.path().join("first");
    let report = mix(&recipe(dir.path(), &sources, &first), "1");
    let by_name =
        |r: &Value, name: &str| r["sources"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();

    // Down-sampled, up-sampled and conditioned sources all land within 1%
    // of their share, counted again by `curate tokenize` on what was written.
    let mut epochs = Vec::new();
    for (name, share) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
        let s = by_name(&report, name);
        let achieved = s["share"].as_f64().unwrap();
        assert!((achieved - share).abs() < 0.01, "{name}: {achieved} against {share}: {s}");
        let written = tokens_of(&first.join("corpus").join(name), &dir.path().join(format!("tokens-{name}")));
        assert_eq!(written, s["tokens"].as_u64().unwrap(), "{name}: mix.json counts what was written");
        epochs.push(s["epochs"].as_u64().unwrap());
    }
    // The recipe's [tokenize] writes the whole mix's token shards (an end-of-text token per document).
    let tokens: Value = serde_json::from_slice(&fs::read(first.join("tokens/stats.json")).unwrap()).unwrap();
    let (sum, docs) = ["a", "b", "c"].iter().fold((0, 0), |(t, d), n| {
        let s = by_name(&report, n);
        (t + s["tokens"].as_u64().unwrap(), d + s["docs"].as_u64().unwrap())
    });
    assert_eq!(tokens["tokens"].as_u64().unwrap(), sum + docs);
    assert_eq!(epochs[0], 0, "a is down-sampled");
    assert!(epochs[1] >= 1, "b is up-sampled: {epochs:?}");
    assert!(first.join("corpus/b/epoch-1").is_dir());
    // The condition holds in every document of c.
    let c = stats(&first.join("corpus/c/epoch-0"));
    assert!(c["steps"][0]["reasons"]["select"].as_u64().unwrap() > 0, "{c}");

    // Byte-identical with two threads, and on a rerun into a fresh folder.
    let second = dir.path().join("second");
    mix(&recipe(dir.path(), &sources, &second), "2");
    assert_eq!(shards(&first), shards(&second));

    // More documents in b: b changes, a and c do not.
    let extra: Vec<Value> = generate_docs(100, 9)
        .into_iter()
        .map(|mut d| {
            d["id"] = format!("b-extra-{}", d["id"].as_str().unwrap()).into();
            d
        })
        .collect();
    write_jsonl(&sources.join("b").join("part-1.jsonl"), &extra);
    let grown = dir.path().join("grown");
    let grown_report = mix(&recipe(dir.path(), &sources, &grown), "2");
    let (before, after) = (shards(&first), shards(&grown));
    for name in ["a", "c"] {
        let pick = |m: &BTreeMap<String, Vec<u8>>| -> Vec<(String, Vec<u8>)> {
            m.iter()
                .filter(|(k, _)| k.starts_with(&format!("corpus/{name}/")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(pick(&before), pick(&after), "{name} is unchanged");
        assert_eq!(by_name(&report, name)["tokens"], by_name(&grown_report, name)["tokens"]);
    }
    assert_ne!(by_name(&report, "b")["available_docs"], by_name(&grown_report, "b")["available_docs"]);
}

#[test]
fn recipes_without_a_target_or_with_a_bad_condition_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let sources = sources(dir.path());
    let out = dir.path().join("out");
    let path = recipe(dir.path(), &sources, &out);
    let text = fs::read_to_string(&path).unwrap();
    for (from, to, expected) in [
        ("total_tokens = 60000\n", "", "weights need a top-level `total_tokens`"),
        ("where = \"n >= 100\"", "where = \"m >= 100\"", "unknown field \"m\""),
        ("name = \"b\"", "name = \"a\"", "source[1].name: \"a\" is taken"),
        ("weight = 0.3", "weight = 0.3\ntokens = 5", "give `weight` (with a top-level `total_tokens`) or `tokens`"),
    ] {
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let o = curate().args(["mix", "--progress", "none"]).arg(&path).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{expected}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{expected}: {}", stderr(&o));
        assert!(!out.exists(), "nothing written");
    }
}
