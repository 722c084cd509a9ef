//! Pipeline files are checked before any work starts.

use std::fs;

use crate::util::*;

#[test]
fn a_bad_pipeline_is_refused_with_its_toml_path_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    fs::write(&input, "{\"text\": \"x\"}\n").unwrap();
    let out_dir = dir.path().join("out");
    let cases = [
        (
            "[[step]]\ntype = \"length\"\nmin_chars = -3\n",
            "step[0].min_chars: invalid value: integer `-3`, expected u64",
        ),
        (
            "[[step]]\ntype = \"langauge\"\n",
            "step[0].type: unknown step type \"langauge\"; known steps: length, field_value, gopher_quality, gopher_repetition, c4_quality, fineweb_quality, word_list, html_extract, url_filter, pii, language, classifier, dedup, line_dedup, decontaminate, perplexity",
        ),
        ("[[step]]\ntype = \"field_value\"\nfield = \"lang\"\n", "step[0]: set keep_values, drop_values or both"),
        ("[output2]\n", "output2: unknown field `output2`"),
    ];
    for (extra, expected) in cases {
        let p = pipeline(
            dir.path(),
            &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n{extra}", input.display(), out_dir.display()),
        );
        let out = run(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{extra}");
        let err = stderr(&out);
        assert!(err.contains(&format!("{}: {expected}", p.display())), "expected {expected:?} in {err}");
        assert!(!out_dir.exists(), "nothing is written for {extra}");
    }
}

#[test]
fn input_and_output_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("real.jsonl");
    fs::write(&input, "{\"text\": \"x\"}\n{\"text\": \"y\"}\n").unwrap();
    let p = pipeline(dir.path(), "[input]\npath = \"/nonexistent\"\n[output]\npath = \"/nonexistent/out\"\n");
    let out_dir = dir.path().join("elsewhere");
    run_ok(&p, &["--input", input.to_str().unwrap(), "--output", out_dir.to_str().unwrap()]);
    assert_eq!(stats(&out_dir)["kept_docs"], 2);
    let missing = run(&p, &["--output", out_dir.to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("input /nonexistent does not exist"));
}

#[test]
fn check_prints_the_pipeline_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        "[input]\npath = \"in\"\n[output]\npath = \"out\"\n[[step]]\ntype = \"length\"\nmin_chars = 5\n",
    );
    let out = curate().arg("check").arg(&p).output().unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["input"]["batch_size"], 1000);
    assert_eq!(shown["steps"][0]["name"], "length");
    assert_eq!(shown["steps"][0]["options"]["min_chars"], 5);
}

#[test]
fn an_output_folder_inside_the_input_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), "{\"text\": \"x\"}\n").unwrap();
    let p =
        pipeline(dir.path(), &format!("[input]\npath = \"{0}\"\n[output]\npath = \"{0}/out\"\n", dir.path().display()));
    let out = run(&p, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is inside the input folder"), "{}", stderr(&out));
    assert!(!dir.path().join("out").exists(), "nothing is created inside the input");
}

/// The output is compared with the input once both are resolved: a link to
/// the input folder, a glob, `..` and the tokens folder do not slip by, in
/// `curate run` and `curate tokenize`. See: issue 13, defect 7.
#[test]
fn r13_an_output_inside_the_input_is_refused_however_it_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.jsonl"), "{\"text\": \"x\"}\n").unwrap();
    std::os::unix::fs::symlink(&data, dir.path().join("link")).unwrap();
    let refused = |input: &str, output: &str| {
        let p = pipeline(dir.path(), &format!("[input]\npath = \"{input}\"\n[output]\npath = \"{output}\"\n"));
        let out = run(&p, &[]);
        assert_eq!(out.status.code(), Some(2), "{input} → {output}: {}", stderr(&out));
        assert!(stderr(&out).contains("is inside the input folder"), "{}", stderr(&out));
    };
    let d = dir.path().display();
    refused(&format!("{d}/link"), &format!("{d}/data/out"));
    refused(&format!("{d}/data"), &format!("{d}/link/out"));
    refused(&format!("{d}/data/*.jsonl"), &format!("{d}/data/out"));
    refused(&format!("{d}/data/.."), &format!("{d}/out"));
    assert!(!data.join("out").exists() && !dir.path().join("out").exists());
    // `..` resolved the other way: a sibling of the input is fine.
    let p = pipeline(dir.path(), &format!("[input]\npath = \"{d}/data/../data\"\n[output]\npath = \"{d}/out\"\n"));
    run_ok(&p, &[]);

    // Tokens: inside the input, or in the output folder's own place.
    let tokenizer = root().join("fixtures/tokenizer.json");
    let tokens = |path: &str| {
        let body = format!(
            "[input]\npath = \"{d}/data\"\n[output]\npath = \"{d}/out2\"\n[tokenize]\ntokenizer = \"{}\"\npath = \"{path}\"\n",
            tokenizer.display()
        );
        run(&pipeline(dir.path(), &body), &[])
    };
    let out = tokens(&format!("{d}/link/tokens"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is inside the input folder"), "{}", stderr(&out));
    let out = tokens(&format!("{d}/out2"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("tokenize.path:") && stderr(&out).contains("is the output folder"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("out2").exists(), "refused before the run");
    let out = curate()
        .args(["tokenize", "--progress", "none", "--input"])
        .arg(&data)
        .arg("--tokenizer")
        .arg(&tokenizer)
        .arg("--output")
        .arg(dir.path().join("link/tokens"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is inside the input folder"), "{}", stderr(&out));
}

/// `curate check` loads the `[tokenize]` tokenizer, as `curate run` does
/// before any work. See: issue 13, defect 12.
#[test]
fn r13_check_loads_the_tokenizer() {
    let dir = tempfile::tempdir().unwrap();
    let body = |tokenizer: &str| {
        format!("[input]\npath = \"in\"\n[output]\npath = \"out\"\n[tokenize]\ntokenizer = \"{tokenizer}\"\n")
    };
    let missing = pipeline(dir.path(), &body("/nonexistent/tokenizer.json"));
    let out = curate().arg("check").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("tokenize: cannot read tokenizer /nonexistent/tokenizer.json"), "{}", stderr(&out));
    let good = pipeline(dir.path(), &body(&root().join("fixtures/tokenizer.json").display().to_string()));
    assert!(curate().arg("check").arg(&good).output().unwrap().status.success());
}
