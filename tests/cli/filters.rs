//! Quality filters as pipeline steps: drops with datatrove's reasons, and
//! C4's rewritten text in the output.

use crate::util::*;

#[test]
fn quality_steps_drop_with_reasons_and_c4_rewrites_the_text() {
    let dir = tempfile::tempdir().unwrap();
    let good = "The whale rose from the sea. The crew cheered loudly. The captain smiled at last.\nThen the storm came in. Everyone ran below deck.";
    let docs = [
        serde_json::json!({"id": "messy", "text": format!("Home | About\n{good}\nWe use cookies to improve the site.")}),
        serde_json::json!({"id": "short", "text": "Only one sentence here."}),
        serde_json::json!({"id": "lorem", "text": format!("{good}\nLorem ipsum dolor sit amet.")}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"c4_quality\"\n[[step]]\ntype = \"gopher_repetition\"\n\
             [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
            input.display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    let kept = jsonl_docs(&out);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], "messy");
    assert_eq!(kept[0]["text"], good, "C4 removed the menu and the cookie line");
    let rejected: Vec<(String, String)> = jsonl_docs(&out.join("rejected"))
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), d["rejected_reason"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        rejected,
        [("short".to_owned(), "too_few_sentences".to_owned()), ("lorem".to_owned(), "lorem_ipsum".to_owned())]
    );
    let stats = stats(&out);
    assert_eq!(stats["steps"][0]["reasons"]["too_few_sentences"], 1);
    assert_eq!(stats["steps"][1]["docs_in"], 1);
}

#[test]
fn annotate_mode_keeps_everything_and_writes_verdicts_and_signals() {
    let dir = tempfile::tempdir().unwrap();
    let prose = "The whale rose from the sea and the crew cheered with joy. ".repeat(8);
    let docs =
        [serde_json::json!({"id": "prose", "text": prose}), serde_json::json!({"id": "tiny", "text": "two words"})];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    for format in ["jsonl", "parquet"] {
        let out = dir.path().join(format);
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"gopher_quality\"\nname = \"quality\"\nmode = \"annotate\"\n\
                 [[step]]\ntype = \"length\"\nmode = \"annotate\"\nmin_chars = 20\n\
                 [output]\npath = \"{}\"\nformat = \"{format}\"\n",
                input.display(),
                out.display()
            ),
        );
        run_ok(&p, &[]);
        let stats = stats(&out);
        assert_eq!((stats["kept_docs"].as_u64(), stats["dropped_docs"].as_u64()), (Some(2), Some(0)), "{format}");
        assert_eq!(stats["steps"][0]["mode"], "annotate");
        assert_eq!(stats["steps"][0]["reasons"]["gopher_short_doc"], 1);
        if format == "jsonl" {
            let kept = jsonl_docs(&out);
            assert_eq!(kept[0]["quality"], "keep");
            assert_eq!(kept[0]["quality.words"], 96.0, "12 words a sentence, the period is not one");
            assert_eq!(kept[0]["quality.stop_words"], 3.0);
            assert_eq!(kept[1]["quality"], "gopher_short_doc");
            assert_eq!(kept[1]["length"], "too_short");
            assert_eq!(kept[1]["length.chars"], 9.0);
            assert!(kept[1]["quality.mean_word_length"].is_number());
        } else {
            let batch = &read_parquet(&out.join("part-000000-000.parquet"))[0];
            let verdicts =
                batch.column_by_name("quality").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            assert_eq!((verdicts.value(0), verdicts.value(1)), ("keep", "gopher_short_doc"));
            let words = batch
                .column_by_name("quality.words")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap();
            assert_eq!(words.value(0), 96.0);
        }
    }
}

#[test]
fn bench_measures_each_filter_and_agrees_with_a_run_on_what_is_kept() {
    let root = root();
    let corpus = root.join("fixtures/corpus");
    let out = curate().arg("bench").arg(&corpus).args(["--json", "--threads", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let steps: Vec<(&str, u64)> =
        rows.iter().map(|r| (r["step"].as_str().unwrap(), r["threads"].as_u64().unwrap())).collect();
    for threads in [1, 2] {
        for step in ["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality", "(pipeline)"] {
            assert!(steps.contains(&(step, threads)), "{step} on {threads} threads: {steps:?}");
        }
    }
    assert!(rows.iter().all(|r| r["docs"] == 114 && r["megabytes_per_second"].as_f64().unwrap() > 0.0));

    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"gopher_quality\"\n[output]\npath = \"{}\"\n",
            corpus.display(),
            dir.path().join("out").display()
        ),
    );
    run_ok(&p, &[]);
    let stats = stats(&dir.path().join("out"));
    let kept = stats["kept_docs"].as_f64().unwrap() / stats["input_docs"].as_f64().unwrap();
    let bench_kept = rows.iter().find(|r| r["step"] == "gopher_quality").unwrap()["kept"].as_f64().unwrap();
    assert!((kept - bench_kept).abs() < 1e-9, "bench keeps {bench_kept}, a run {kept}");
}

#[test]
fn word_lists_are_read_from_files_per_language() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("en.txt"), "# English\ndarn\nheck it\n").unwrap();
    std::fs::write(dir.path().join("ja.txt"), "ばか\n").unwrap();
    let docs = [
        serde_json::json!({"id": "a", "text": "Well, darn it.", "language": "en"}),
        serde_json::json!({"id": "b", "text": "darned socks", "language": "en"}),
        serde_json::json!({"id": "c", "text": "あなたはばかです", "language": "ja"}),
        serde_json::json!({"id": "d", "text": "darn", "language": "ja"}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let body = |paths: &str| {
        format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"word_list\"\nmax_count = 0\n{paths}\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
            input.display(),
            out.display()
        )
    };
    let paths = format!(
        "paths = {{ en = \"{}\", ja = \"{}\" }}",
        dir.path().join("en.txt").display(),
        dir.path().join("ja.txt").display()
    );
    run_ok(&pipeline(dir.path(), &body(&paths)), &[]);
    let kept: Vec<String> = jsonl_docs(&out).iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kept, ["b", "d"]);
    assert_eq!(stats(&out)["steps"][0]["reasons"]["word_list_count"], 2);

    let missing = run(&pipeline(dir.path(), &body("path = \"/nonexistent/list.txt\"")), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("step[0].path: cannot read word list /nonexistent/list.txt"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn urls_are_filtered_by_list_files_with_datatroves_reasons() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("domains.txt"), "# blocked\nspam.co.uk\nwww.bad.com\n").unwrap();
    std::fs::write(dir.path().join("words.txt"), "casino\r\n").unwrap();
    std::fs::write(dir.path().join("soft.txt"), "free\nwin\n").unwrap();
    let docs = [
        ("a", Some("https://shop.spam.co.uk/page")),
        ("b", Some("http://www.bad.com/")),
        ("c", Some("http://bad.com/")),
        ("d", Some("https://ok.org/casino-night")),
        ("e", Some("https://ok.org/free/win")),
        ("f", Some("https://ok.org/free")),
        ("g", None),
    ];
    let docs: Vec<serde_json::Value> = docs
        .iter()
        .map(|(id, url)| match url {
            Some(url) => serde_json::json!({"id": id, "text": "x", "url": url}),
            None => serde_json::json!({"id": id, "text": "x"}),
        })
        .collect();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let step = format!(
        "[[step]]\ntype = \"url_filter\"\ndomains_path = \"{}\"\nbanned_words_path = \"{}\"\nsoft_banned_words_path = \"{}\"\n",
        dir.path().join("domains.txt").display(),
        dir.path().join("words.txt").display(),
        dir.path().join("soft.txt").display()
    );
    let body = format!(
        "[input]\npath = \"{}\"\n{step}[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
        input.display(),
        out.display()
    );
    run_ok(&pipeline(dir.path(), &body), &[]);
    let kept: Vec<String> = jsonl_docs(&out).iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kept, ["c", "f"]);
    let reasons = &stats(&out)["steps"][0]["reasons"];
    for (reason, n) in
        [("domain", 1), ("subdomain", 1), ("hard_blacklisted", 1), ("soft_blacklisted", 1), ("no_url", 1)]
    {
        assert_eq!(reasons[reason], n, "{reason}: {reasons}");
    }
    let none = run(&pipeline(dir.path(), &body.replace(&step, "[[step]]\ntype = \"url_filter\"\n")), &[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("give at least one list"), "{}", stderr(&none));
}

#[test]
fn pii_is_redacted_in_the_output_and_counted_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        serde_json::json!({"id": "a", "text": "Write to jane@corp.example.com or call (415) 555-2671."}),
        serde_json::json!({"id": "b", "text": "Version 1.2.3.4 is out; the server is 203.0.113.7? No, 8.8.8.8."}),
        serde_json::json!({"id": "c", "text": "Nothing to see here."}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"pii\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
            input.display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    let texts: Vec<String> = jsonl_docs(&out).iter().map(|d| d["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        texts,
        [
            "Write to <EMAIL> or call <PHONE>.",
            "Version 1.2.3.4 is out; the server is 203.0.113.7? No, <IP_ADDRESS>.",
            "Nothing to see here."
        ]
    );
    let stats = stats(&out);
    let totals = &stats["steps"][0]["totals"];
    assert_eq!(
        (totals["email"].as_f64(), totals["phone"].as_f64(), totals["ip"].as_f64()),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    assert_eq!(stats["kept_docs"], 3);
}

#[test]
fn language_step_sets_the_language_and_keeps_the_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [
        serde_json::json!({"id": "en", "text": "All human beings are born free and equal in dignity and rights."}),
        serde_json::json!({"id": "fr", "text": "Tous les êtres humains naissent libres et égaux en dignité et en droits."}),
        serde_json::json!({"id": "de", "text": "Alle Menschen sind frei und gleich an Würde und Rechten geboren.", "language": "xx"}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    for format in ["jsonl", "parquet"] {
        let out = dir.path().join(format);
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n[[step]]\ntype = \"language\"\nlanguages = [\"en\", \"deu\"]\n\
                 [output]\npath = \"{}\"\nformat = \"{format}\"\nrejected = true\n",
                input.display(),
                out.display()
            ),
        );
        run_ok(&p, &[]);
        let stats = stats(&out);
        assert_eq!(stats["steps"][0]["reasons"]["language_not_allowed"], 1, "{format}");
        if format == "jsonl" {
            let kept = jsonl_docs(&out);
            let langs: Vec<(&str, &str)> =
                kept.iter().map(|d| (d["id"].as_str().unwrap(), d["language"].as_str().unwrap())).collect();
            assert_eq!(langs, [("en", "en"), ("de", "de")], "an existing field is overwritten in place");
            assert!(kept[0]["language_score"].as_f64().unwrap() > 0.5);
            assert_eq!(jsonl_docs(&out.join("rejected"))[0]["language"], "fr");
        } else {
            let batch = &read_parquet(&out.join("part-000000-000.parquet"))[0];
            let langs =
                batch.column_by_name("language").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
            assert_eq!((langs.value(0), langs.value(1)), ("en", "de"));
            assert!(batch.column_by_name("language_score").is_some());
        }
    }
}

/// FineWeb-style routing: `output.partition_by = "language"` writes each
/// language to its own subfolder, on the bundled multilingual UDHR sample.
#[test]
fn each_language_goes_to_its_own_subfolder() {
    let root = root();
    let dir = tempfile::tempdir().unwrap();
    let input = root.join("fixtures/corpus/udhr_sample.jsonl.gz");
    let run_with = |threads: &str| {
        let out = dir.path().join(format!("out-{threads}"));
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\nbatch_size = 7\n[[step]]\ntype = \"language\"\n\
                 [output]\npath = \"{}\"\nformat = \"jsonl\"\npartition_by = \"language\"\n",
                input.display(),
                out.display()
            ),
        );
        run_ok(&p, &["--threads", threads]);
        out
    };
    let out = run_with("1");
    let stats = stats(&out);
    let partitions = stats["partitions"].as_object().unwrap();
    assert!(partitions.len() >= 10, "{partitions:?}");
    let mut total = 0;
    for (language, n) in partitions {
        let docs = jsonl_docs(&out.join(language));
        assert_eq!(docs.len() as u64, n.as_u64().unwrap(), "{language}");
        assert!(docs.iter().all(|d| d["language"] == language.as_str()), "{language}");
        total += docs.len() as u64;
    }
    assert_eq!(total, stats["kept_docs"].as_u64().unwrap());
    assert!(jsonl_docs(&out).is_empty(), "nothing is written outside the subfolders");
    assert_eq!(snapshot(&out), snapshot(&run_with("2")), "the same files whatever the thread count");
}

/// Documents without the field, or with values that are not safe folder
/// names, still land in a subfolder of the output.
#[test]
fn partition_values_are_made_safe_folder_names() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_jsonl(
        &input,
        &[
            serde_json::json!({"id": "a", "text": "x", "source": "../../etc"}),
            serde_json::json!({"id": "b", "text": "y"}),
            serde_json::json!({"id": "c", "text": "z", "source": 7}),
            serde_json::json!({"id": "d", "text": "w", "source": "web"}),
            serde_json::json!({"id": "e", "text": "v", "source": "rejected"}),
            serde_json::json!({"id": "f", "text": "u", "source": ".curate"}),
        ],
    );
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\npartition_by = \"source\"\n",
            input.display(),
            out.display()
        ),
    );
    run_ok(&p, &[]);
    let ids =
        |sub: &str| jsonl_docs(&out.join(sub)).iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids("_.._.._etc"), ["a"]);
    assert_eq!(ids("unknown"), ["b"]);
    assert_eq!(ids("7"), ["c"]);
    assert_eq!(ids("web"), ["d"]);
    assert_eq!(ids("_rejected"), ["e"]);
    assert_eq!(ids("_.curate"), ["f"]);
    assert!(!dir.path().join("etc").exists());
}

#[test]
fn perplexity_step_reads_an_arpa_model_and_scores_pages() {
    let dir = tempfile::tempdir().unwrap();
    let arpa = dir.path().join("m.arpa");
    std::fs::write(
        &arpa,
        "\\data\\\nngram 1=5\nngram 2=3\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\t-0.3\n-0.5\t</s>\n-0.7\tthe\t-0.2\n-0.9\twhale\t-0.1\n\n\
         \\2-grams:\n-0.2\t<s> the\n-0.4\tthe whale\n-0.3\twhale </s>\n\n\\end\\\n",
    )
    .unwrap();
    let docs = [
        serde_json::json!({"id": "fluent", "text": "the whale"}),
        serde_json::json!({"id": "odd", "text": "ship ship ship"}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let out = dir.path().join("out");
    let body = |path: &str| {
        format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"perplexity\"\npath = \"{path}\"\nmax_perplexity = 5.0\nbuckets = [1.5, 5.0]\n\
             [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
            input.display(),
            out.display()
        )
    };
    run_ok(&pipeline(dir.path(), &body(arpa.to_str().unwrap())), &[]);
    let kept = jsonl_docs(&out);
    assert_eq!(kept.len(), 1);
    assert!((kept[0]["perplexity"].as_f64().unwrap() - 10f64.powf(0.9 / 3.0)).abs() < 1e-5);
    assert_eq!(kept[0]["perplexity_bucket"], "middle");
    let rejected = jsonl_docs(&out.join("rejected"));
    assert_eq!(rejected[0]["rejected_reason"], "perplexity_too_high");
    assert_eq!(rejected[0]["perplexity_bucket"], "tail");

    let missing = run(&pipeline(dir.path(), &body("/nonexistent.arpa")), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("step[0].path: cannot read model /nonexistent.arpa"), "{}", stderr(&missing));
}

#[test]
fn lm_train_writes_a_model_the_perplexity_step_uses() {
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    let arpa = dir.path().join("moby.arpa");
    let out = curate()
        .args(["lm", "train", "--order", "3", "--input"])
        .arg(root.join("fixtures/corpus/moby_dick.jsonl.zst"))
        .arg("--output")
        .arg(&arpa)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&arpa).unwrap();
    assert!(
        text.starts_with("\\data\\\nngram 1=") && text.contains("\\3-grams:") && text.trim_end().ends_with("\\end\\")
    );
    let docs = [
        serde_json::json!({"id": "melville", "text": "Call me Ishmael. Some years ago, never mind how long precisely."}),
        serde_json::json!({"id": "noise", "text": "qzx vbnm plkj wert yuio asdf ghjk"}),
    ];
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &docs);
    let result = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[[step]]\ntype = \"perplexity\"\npath = \"{}\"\n[output]\npath = \"{}\"\nformat = \"jsonl\"\n",
            input.display(),
            arpa.display(),
            result.display()
        ),
    );
    run_ok(&p, &[]);
    let scored = jsonl_docs(&result);
    let (prose, noise) = (scored[0]["perplexity"].as_f64().unwrap(), scored[1]["perplexity"].as_f64().unwrap());
    assert!(prose < noise / 10.0, "Melville {prose} is far likelier than noise {noise}");
}

/// A partition value too long for a file name gets a shortened name with a
/// hash of the whole value, and a unit with more distinct values than
/// there are open files to spare still writes every one, a bounded number
/// of shards open at a time. See: issue 13, defect 6.
#[test]
fn r13_partitions_with_long_values_and_many_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let long = |c: char| c.to_string().repeat(300);
    let mut docs: Vec<serde_json::Value> = (0..300)
        .map(|i| serde_json::json!({"id": format!("d{i}"), "text": format!("document {i}"), "source": format!("s{i:03}")}))
        .collect();
    docs.push(serde_json::json!({"id": "long-a", "text": "a", "source": format!("{}a", long('x'))}));
    docs.push(serde_json::json!({"id": "long-b", "text": "b", "source": format!("{}b", long('x'))}));
    write_jsonl(&input, &docs);
    for format in ["jsonl", "parquet"] {
        let out = dir.path().join(format!("out-{format}"));
        let p = pipeline(
            dir.path(),
            &format!(
                "[input]\npath = \"{}\"\n[output]\npath = \"{}\"\nformat = \"{format}\"\npartition_by = \"source\"\n",
                input.display(),
                out.display()
            ),
        );
        let bin = env!("CARGO_BIN_EXE_curate");
        // 302 partitions in one unit, under a limit of 120 open files.
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -Sn 120 && exec '{bin}' run '{}' --progress none --threads 2", p.display()))
            .output()
            .unwrap();
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let s = stats(&out);
        assert_eq!(s["kept_docs"], 302);
        let partitions = s["partitions"].as_object().unwrap();
        assert_eq!(partitions.len(), 302, "{format}");
        assert!(partitions.keys().all(|k| k.len() <= 100), "{format}: {:?}", partitions.keys().max_by_key(|k| k.len()));
        let long_names: Vec<&String> = partitions.keys().filter(|k| k.starts_with("xxx")).collect();
        assert_eq!(long_names.len(), 2, "two long values that share a prefix stay apart");
        assert!(long_names.iter().all(|n| out.join(n).is_dir()));
    }
}
