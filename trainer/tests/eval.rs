//! `curate eval` on an exported model: multiple-choice acc, acc_norm and
//! log-likelihoods equal lm-evaluation-harness's (its `hf` model on the
//! same folder), perplexity equals a transformers computation, and greedy
//! generation scores the continuations transformers generates as exact.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn fixture(name: &str) -> std::path::PathBuf {
    manifest_dir().join("../fixtures").join(name)
}

fn eval_json(model: &Path, args: &[&str], out: &Path) -> Value {
    let result = trainer()
        .arg("eval")
        .arg(model)
        .args(["--device", "cpu", "--max-length", "128", "--output"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let table = String::from_utf8_lossy(&result.stdout);
    assert!(table.contains("acc_norm") || !args.contains(&"--choice"), "{table}");
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

#[test]
fn eval_matches_lm_evaluation_harness_and_transformers() {
    let work = tempfile::tempdir().unwrap();
    let models = work.path().join("hf");
    reference(&["make", models.to_str().unwrap(), "chat"]);
    let export = work.path().join("exported");
    let out = trainer()
        .arg("export")
        .arg(models.join("llama-chat"))
        .arg("--output")
        .arg(&export)
        .arg("--tokenizer")
        .arg(fixture("chat"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let choice = fixture("eval/choice.jsonl");
    let text = fixture("eval/text.jsonl");
    let ours = eval_json(
        &export,
        &["--choice", choice.to_str().unwrap(), "--perplexity", text.to_str().unwrap()],
        &work.path().join("results.json"),
    );
    let harness: Value = serde_json::from_str(
        &String::from_utf8(
            reference_script("lm_eval_choice.py", &[export.to_str().unwrap(), choice.to_str().unwrap()]).stdout,
        )
        .unwrap(),
    )
    .unwrap();
    let task = &ours["tasks"]["choice"];
    assert_eq!(task["acc"], harness["acc"], "acc: ours {task}, the harness's {harness}");
    assert_eq!(task["acc_norm"], harness["acc_norm"], "acc_norm: ours {task}, the harness's {harness}");
    let (a, b) = (task["loglikelihoods"].as_array().unwrap(), harness["loglikelihoods"].as_array().unwrap());
    assert_eq!(a.len(), 20);
    assert_eq!(a.len(), b.len());
    for (q, (x, y)) in a.iter().zip(b).enumerate() {
        for (u, v) in x.as_array().unwrap().iter().zip(y.as_array().unwrap()) {
            let (u, v) = (u.as_f64().unwrap(), v.as_f64().unwrap());
            assert!((u - v).abs() <= 1e-4 * v.abs().max(1.0), "question {q}: log-likelihood {u} against {v}");
        }
    }

    let theirs: Value = serde_json::from_slice(
        &reference(&["perplexity", export.to_str().unwrap(), text.to_str().unwrap(), "128"]).stdout,
    )
    .unwrap();
    let mine = &ours["tasks"]["text"];
    assert_eq!(mine["tokens"].as_f64().unwrap(), theirs["tokens"].as_f64().unwrap());
    let (x, y) = (mine["nll_per_token"].as_f64().unwrap(), theirs["nll_per_token"].as_f64().unwrap());
    assert!((x - y).abs() <= 1e-5 * y, "perplexity: {x} against transformers' {y} nats per token");

    // Greedy generation: transformers' own continuations score 1, others 0.
    let generated =
        reference(&["generate", export.to_str().unwrap(), fixture("eval/generate.jsonl").to_str().unwrap(), "12"]);
    let answers = work.path().join("answers.jsonl");
    std::fs::write(&answers, &generated.stdout).unwrap();
    let ours = eval_json(
        &export,
        &["--generate", answers.to_str().unwrap(), "--max-new-tokens", "12"],
        &work.path().join("generated.json"),
    );
    assert_eq!(ours["tasks"]["answers"]["exact_match"], 1.0, "{ours}");
    let ours = eval_json(
        &export,
        &["--generate", fixture("eval/generate.jsonl").to_str().unwrap(), "--max-new-tokens", "12"],
        &work.path().join("fixture.json"),
    );
    assert_eq!(ours["tasks"]["generate"]["exact_match"], 0.0, "a random model does not know Moby-Dick: {ours}");
}

#[test]
fn eval_refuses_what_it_cannot_score_by_name() {
    let work = tempfile::tempdir().unwrap();
    let bad = work.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"context\": \"a\", \"choices\": [\"b\"], \"gold\": 3}\n").unwrap();
    let out = trainer().arg("eval").arg(work.path().join("missing")).arg("--choice").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing: no such folder"), "{}", stderr(&out));
    let out = trainer().arg("eval").arg(fixture("tokens")).output().unwrap();
    assert!(stderr(&out).contains("no task"), "{}", stderr(&out));
}
