//! fastText models against Python fastText (fasttext-numpy2-wheel 0.9.2):
//! predictions of models Python trained (language ID over many scripts,
//! softmax, quantized, one-vs-all; a binary hierarchical-softmax
//! classifier) and of a model `curate classifier train` trained; the
//! `language` and `classifier` steps against datatrove's rules; held-out
//! accuracy of curate's training against Python's.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// Paragraphs of the bundled corpora: (UDHR language code, paragraph) for
/// language ID, Moby-Dick's paragraphs, and web-like lines.
fn corpora() -> (Vec<(String, String)>, Vec<String>, Vec<String>) {
    let mut udhr = String::new();
    flate2::read::GzDecoder::new(fs::File::open(root().join("fixtures/corpus/udhr_sample.jsonl.gz")).unwrap())
        .read_to_string(&mut udhr)
        .unwrap();
    let mut lid = Vec::new();
    for line in udhr.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let lang = doc["lang"].as_str().unwrap();
        for paragraph in doc["text"].as_str().unwrap().lines().filter(|p| p.trim().chars().count() > 20) {
            lid.push((lang.to_owned(), paragraph.trim().to_owned()));
        }
    }
    let moby = zstd::decode_all(fs::File::open(root().join("fixtures/corpus/moby_dick.jsonl.zst")).unwrap()).unwrap();
    let mut book = Vec::new();
    for line in String::from_utf8(moby).unwrap().lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        book.extend(doc["text"].as_str().unwrap().split("\n\n").filter(|p| p.len() > 80).map(str::to_owned));
    }
    let web = fs::read_to_string(root().join("fixtures/words/spacy_web.jsonl")).unwrap();
    let web = web.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_owned());
    (lid, book, web.collect())
}

/// Texts a classifier meets besides its training data: empty, blank,
/// other scripts, control characters, newlines, very long.
fn awkward_texts() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        " ",
        "\t",
        "é",
        "中文",
        "a",
        "tab\tseparated words",
        "several   spaces",
        "line one\nline two\n\nthree",
        "carriage\rreturn",
        "vertical\u{b}tab and\u{c}form feed",
        "nul\u{0}byte",
        "🙂 emoji 🙂🙂",
        "__label__en trick",
        "Ünïcödé çömbïnïng é",
        "http://example.com/path?q=1 mail@example.org",
        "def f(x):\n    return x + 1\n",
        "| col | col2 |\n|---|---|\n| 1 | 2 |",
        "すべての人間は、生まれながらにして自由である。",
        "Все люди рождаются свободными",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    texts.push("x".repeat(3000));
    texts.push((0..1500).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" "));
    texts
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) {
    fs::write(path, lines.into_iter().map(|l| l + "\n").collect::<String>()).unwrap();
}

fn jsonl_of(path: &Path) -> Vec<Value> {
    fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `curate fasttext-predict MODEL` on the texts.
fn curate_predictions(model: &Path, texts: &Path) -> Vec<Value> {
    let out = curate().arg("fasttext-predict").arg(model).stdin(fs::File::open(texts).unwrap()).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// The same labels in the same order (ties included, as libstdc++'s heap
/// leaves them) with probabilities within 1e-5.
fn assert_same_predictions(name: &str, ours: &[Value], python: &[Value], texts: &[String]) {
    assert_eq!(ours.len(), python.len(), "{name}");
    for ((ours, python), text) in ours.iter().zip(python).zip(texts) {
        assert_eq!(ours["labels"], python["labels"], "{name}: labels of {text:?}");
        for (p, q) in ours["probs"].as_array().unwrap().iter().zip(python["probs"].as_array().unwrap()) {
            let (p, q) = (p.as_f64().unwrap(), q.as_f64().unwrap());
            assert!((p - q).abs() <= 1e-5, "{name}: {text:?}: {p} against {q}");
        }
    }
}

#[test]
fn fasttext_models_predict_and_train_as_python_fasttext() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (lid, book, web) = corpora();
    // Training lines in a fixed shuffle, every fifth paragraph held out
    // for prediction.
    let mut order: Vec<usize> = (0..lid.len()).collect();
    order.sort_by_key(|&i| (i * 7919) % lid.len());
    let (mut lid_train, mut texts) = (Vec::new(), Vec::new());
    for (n, &i) in order.iter().enumerate() {
        let (lang, text) = &lid[i];
        if n % 5 == 0 {
            texts.push(text.clone());
        } else {
            lid_train.push(format!("__label__{lang} {text}"));
        }
    }
    write_lines(&d.join("lid.train"), lid_train);
    // GlotLID's labels: language and script.
    let glot = [("pol_Latn", "polish"), ("khk_Cyrl", "mongolian"), ("cmn_Hani", "chinese"), ("arb_Arab", "arabic")];
    let samples: BTreeMap<&str, Vec<&String>> = glot
        .iter()
        .map(|(label, _)| {
            let lang = &label[..3];
            (*label, lid.iter().filter(|(l, _)| l == lang).map(|(_, t)| t).collect())
        })
        .collect();
    assert!(samples.values().all(|s| s.len() >= 5), "the UDHR sample lacks a language of the GlotLID model");
    write_lines(
        &d.join("glot.train"),
        samples.iter().flat_map(|(label, ts)| ts.iter().map(move |t| format!("__label__{label} {t}"))),
    );
    let (book_train, book_test) = book.split_at(book.len() * 4 / 5);
    let (web_train, web_test) = web.split_at(web.len() * 4 / 5);
    let quality: Vec<String> = book_train
        .iter()
        .map(|t| format!("__label__hq {}", t.replace('\n', " ")))
        .zip(web_train.iter().map(|t| format!("__label__lq {}", t.replace('\n', " "))))
        .flat_map(|(a, b)| [a, b])
        .collect();
    write_lines(&d.join("quality.train"), quality);
    texts.extend(book_test.iter().take(40).cloned());
    texts.extend(web_test.iter().cloned());
    texts.extend(awkward_texts());
    let texts_path = d.join("texts.jsonl");
    write_jsonl(&texts_path, &texts.iter().map(|t| serde_json::json!({"text": t})).collect::<Vec<_>>());
    // Documents for the classifier step: mixed book and web paragraphs.
    let docs: Vec<Value> = (0..30)
        .map(|i| {
            let text = match i % 3 {
                0 => book_test[i].clone(),
                1 => web_test[i % web_test.len()].clone(),
                _ => format!("{}\n\n{}\n{}\n\n", book_test[i], web_test[i % web_test.len()], book_test[i + 1]),
            };
            serde_json::json!({"id": format!("d{i}"), "text": text})
        })
        .collect();
    write_jsonl(&d.join("docs.jsonl"), &docs);

    // curate trains a classifier on the same book and web lines.
    let (pos, neg) = (d.join("pos.jsonl"), d.join("neg.jsonl"));
    write_jsonl(&pos, &book.iter().map(|t| serde_json::json!({"text": t})).collect::<Vec<_>>());
    write_jsonl(&neg, &web.iter().map(|t| serde_json::json!({"text": t})).collect::<Vec<_>>());
    let model = d.join("trained/model.bin");
    let out = curate()
        .args(["classifier", "train", "--positive"])
        .arg(&pos)
        .arg("--negative")
        .arg(&neg)
        .arg("--output")
        .arg(&model)
        .args(["--dim", "16", "--epoch", "10", "--word-ngrams", "2", "--bucket", "100000", "--keep-data"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    python_reference("fasttext_models.py", &[OsStr::new(d)]);

    for name in ["lid.bin", "lid.ftz", "lid-ova.bin", "glot.bin", "quality.bin", "trained.bin"] {
        let model = if name == "trained.bin" { model.clone() } else { d.join(name) };
        let python = jsonl_of(&d.join(format!("{name}.pred.jsonl")));
        assert_same_predictions(name, &curate_predictions(&model, &texts_path), &python, &texts);
    }

    // Held-out accuracy: Python scores curate's model as curate did, and
    // Python's own model trained on the same lines is within a point.
    let metrics: Value = serde_json::from_slice(&fs::read(d.join("trained/model.bin.metrics.json")).unwrap()).unwrap();
    let python: Value = serde_json::from_slice(&fs::read(d.join("trained.python.json")).unwrap()).unwrap();
    assert_eq!(metrics["held_out"], python["held_out"]);
    let ours = metrics["accuracy"].as_f64().unwrap();
    assert_eq!(ours, python["accuracy_of_curate_model"].as_f64().unwrap());
    let theirs = python["accuracy_of_python_model"].as_f64().unwrap();
    assert!((ours - theirs).abs() <= 0.01, "held-out accuracy {ours} against Python fastText's {theirs}");
    assert!(ours > 0.9, "the classifier learned little: {metrics}");
    eprintln!("held-out accuracy: curate {ours}, Python fastText {theirs} ({} documents)", metrics["held_out"]);

    // The language step: the top label, ISO 639-1 where one exists, the
    // script of GlotLID's labels.
    let iso639: BTreeMap<String, String> = fs::read_to_string(root().join("filters/data/iso639_3_to_1.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_once('\t').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap())
        .collect();
    assert_eq!(iso639["cmn"], "zh");
    for (model, field_script) in [("lid.bin", false), ("glot.bin", true)] {
        let out = d.join(format!("lang-{model}"));
        let p = pipeline(
            d,
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"language\"\nmodel = \"fasttext\"\nmodel_path = \"{}\"\n\
                 [output]\npath = \"{}\"\nformat = \"jsonl\"\n",
                texts_path.display(),
                d.join(model).display(),
                out.display()
            ),
        );
        run_ok(&p, &[]);
        let kept = jsonl_docs(&out);
        let python = jsonl_of(&d.join(format!("{model}.pred.jsonl")));
        assert_eq!(kept.len(), texts.len());
        for (doc, python) in kept.iter().zip(&python) {
            let label = python["labels"][0].as_str().unwrap().trim_start_matches("__label__");
            let (code, script) = label.split_once('_').map_or((label, None), |(c, s)| (c, Some(s)));
            let iso = iso639.get(code).map_or(code, String::as_str);
            assert_eq!(doc["language"], iso, "{doc}");
            assert!((doc["language_score"].as_f64().unwrap() - python["probs"][0].as_f64().unwrap()).abs() <= 1e-5);
            if field_script {
                assert_eq!(doc["language_script"], script.unwrap(), "{doc}");
            } else {
                assert_eq!(doc["language_script"], Value::Null);
            }
        }
    }

    // The classifier step, whole documents and paragraphs, against datatrove's filter.
    let expected = jsonl_of(&d.join("classifier.expected.jsonl"));
    for level in ["document", "paragraph"] {
        let out = d.join(format!("classifier-{level}"));
        let p = pipeline(
            d,
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"classifier\"\nmodel_path = \"{}\"\nlevel = \"{level}\"\n\
                 keep_labels = {{ hq = 0.5 }}\n[output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
                d.join("docs.jsonl").display(),
                d.join("quality.bin").display(),
                out.display()
            ),
        );
        run_ok(&p, &[]);
        let mut seen: BTreeMap<String, Value> =
            jsonl_docs(&out).into_iter().map(|d| (d["id"].as_str().unwrap().to_owned(), d)).collect();
        let rejected: BTreeMap<String, Value> =
            jsonl_docs(&out.join("rejected")).into_iter().map(|d| (d["id"].as_str().unwrap().to_owned(), d)).collect();
        let (mut kept, mut dropped, mut cut) = (0, 0, 0);
        for want in &expected {
            let id = want["id"].as_str().unwrap();
            let want = &want[level];
            if want["kept"].as_bool().unwrap() {
                let doc = seen.remove(id).unwrap_or_else(|| panic!("{level}: {id} was dropped: {want}"));
                assert_eq!(doc["text"], want["text"], "{level}: {id}");
                for (label, score) in want["scores"].as_object().unwrap() {
                    let ours = doc[label].as_f64().unwrap();
                    assert!(
                        (ours - score.as_f64().unwrap()).abs() <= 1e-5,
                        "{level}: {id}: {label} {ours} against {score}"
                    );
                }
                kept += 1;
                cut += usize::from(want["text"] != docs.iter().find(|d| d["id"] == id).unwrap()["text"]);
            } else {
                assert_eq!(rejected[id]["rejected_reason"], "classifier_low_score", "{level}: {id}");
                dropped += 1;
            }
        }
        assert!(seen.is_empty(), "{level}: kept against datatrove: {seen:?}");
        assert!(kept > 0 && dropped > 0, "{level}: kept {kept}, dropped {dropped}: the test data decides nothing");
        if level == "paragraph" {
            assert!(cut > 0, "no paragraph was cut from a kept document");
        }
    }
}

#[test]
fn fasttext_steps_refuse_what_does_not_fit_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.jsonl");
    write_jsonl(&input, &[serde_json::json!({"id": "a", "text": "hello"})]);
    let not_a_model = d.join("model.bin");
    fs::write(&not_a_model, b"this is not a fastText model").unwrap();
    for (step, want) in [
        ("type = \"language\"\nmodel = \"fasttext\"\n", "`model = \"fasttext\"` needs its `model_path`"),
        (
            &format!("type = \"language\"\nmodel = \"fasttext\"\nmodel_path = \"{}\"\n", not_a_model.display()),
            "not a fastText model",
        ),
        ("type = \"classifier\"\nmodel_path = \"/nonexistent/model.bin\"\n", "model_path"),
        ("type = \"classifier\"\nlabel = \"hq\"\nremove_labels = { lq = 0.5 }\n", "not both"),
    ] {
        let p = pipeline(
            d,
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\n{step}[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
                input.display(),
                d.join("out").display()
            ),
        );
        let out = run(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{step}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{step}: {}", stderr(&out));
    }
}
