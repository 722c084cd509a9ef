//! `curate report`: the HTML of a run's output folder and of a training
//! run's folder, opened in a real headless browser (Debian's chromium,
//! which scripts/test.sh installs) to check that every chart rendered and
//! no script failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::util::*;

/// The chromium that scripts/test.sh installs.
fn chromium() -> PathBuf {
    std::env::var_os("CURATE_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| {
        panic!("CURATE_CHROMIUM is not set: run the tests through scripts/test.sh, or export CURATE_CHROMIUM=$(scripts/chromium.sh)")
    })
}

/// Opens `html` in headless chromium: the DOM after the page's load event,
/// and what the browser wrote on stderr. Also saves a screenshot to `png`.
fn open_in_browser(html: &Path, png: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", html.canonicalize().unwrap().display());
    let browser = |extra: &[String]| {
        Command::new(chromium())
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0"])
            .args(extra)
            .arg(&url)
            .output()
            .unwrap()
    };
    let dom = browser(&["--dump-dom".into()]);
    assert!(dom.status.success(), "chromium failed: {}", String::from_utf8_lossy(&dom.stderr));
    let shot = browser(&["--window-size=1400,2000".into(), format!("--screenshot={}", png.display())]);
    assert!(shot.status.success(), "chromium failed: {}", String::from_utf8_lossy(&shot.stderr));
    (String::from_utf8_lossy(&dom.stdout).into_owned(), String::from_utf8_lossy(&dom.stderr).into_owned())
}

/// Every chart in the file rendered (the page's own check, run by the
/// browser, counts them and the empty ones), and no script error.
fn assert_rendered(html: &Path, dir: &Path) -> usize {
    let source = fs::read_to_string(html).unwrap();
    let charts = source.matches("<svg class=\"chart\"").count();
    assert!(charts > 0);
    let png = dir.join("report.png");
    let (dom, log) = open_in_browser(html, &png);
    assert!(
        dom.contains(&format!("data-charts=\"{charts}\"")),
        "the page's check did not run or counted otherwise: {}",
        &dom[..dom.len().min(600)]
    );
    assert!(dom.contains("data-empty-charts=\"0\""), "a chart rendered empty");
    for line in log.lines() {
        let script_error = line.contains("Uncaught") || (line.contains("CONSOLE") && line.contains("rror"));
        assert!(!script_error, "{line}");
    }
    let png = fs::read(&png).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot with something in it");
    charts
}

#[test]
fn a_run_report_shows_the_funnel_every_signal_with_its_thresholds_tokens_and_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\nbatch_size = 16\n\
             [[step]]\ntype = \"length\"\nmin_chars = 500\n\
             [[step]]\ntype = \"language\"\n\
             [[step]]\ntype = \"gopher_quality\"\nname = \"quality\"\nmode = \"annotate\"\nmin_doc_words = 400\n\
             [[step]]\ntype = \"c4_quality\"\nmin_num_sentences = 3\n\
             [output]\npath = \"{}\"\nrejected = true\n\
             [tokenize]\ntokenizer = \"{}\"\nshard_tokens = 100000\n",
            root().join("fixtures/corpus").display(),
            out.display(),
            root().join("fixtures/tokenizer.json").display()
        ),
    );
    run_ok(&p, &[]);
    let o = curate().arg("report").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html_path = out.join("report.html");
    let html = fs::read_to_string(&html_path).unwrap();
    let stats = stats(&out);

    // Every annotated signal has its histogram; configured and default
    // thresholds are drawn where they fall near the data.
    for signal in ["words", "mean_word_length", "hash_ratio", "stop_words", "alpha_words_ratio"] {
        assert!(
            html.contains(&format!(
                "<text x=\"12\" y=\"15\" font-size=\"13\" font-weight=\"bold\">quality.{signal}</text>"
            )),
            "{signal}"
        );
    }
    assert!(html.contains("threshold 400"), "the configured min_doc_words");
    assert!(html.contains("threshold 0.8"), "the default max_non_alpha_words_ratio");
    assert!(html.contains("Documents per language") && html.contains("text: length in characters"));
    assert!(html.contains("Documents by tokens per document"), "the token shards' section");
    // An example for every reason a step dropped or flagged for.
    for step in stats["steps"].as_array().unwrap() {
        for reason in step["reasons"].as_object().unwrap().keys() {
            assert!(html.contains(&format!("{}: {reason} — ", step["name"].as_str().unwrap())), "{reason}");
        }
    }
    // Document text is escaped, never markup.
    assert!(!html.contains("<script>") || html.matches("<script>").count() == 1, "only the page's own script");

    let charts = assert_rendered(&html_path, dir.path());
    assert!(charts >= 12, "{charts} charts");
}

#[test]
fn a_training_report_charts_loss_learning_rate_gradient_norm_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::copy(root().join("fixtures/report/metrics.jsonl"), run.join("metrics.jsonl")).unwrap();
    let html_path = dir.path().join("training.html");
    let o = curate().arg("report").arg(&run).arg("--output").arg(&html_path).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let html = fs::read_to_string(&html_path).unwrap();
    for title in ["Loss", "Learning rate", "Gradient norm", "Tokens per second", "Peak memory per rank, bytes"] {
        assert!(html.contains(&format!("font-weight=\"bold\">{title}</text>")), "{title}");
    }
    // Training and validation loss share the loss chart.
    assert!(html.contains(">loss</text>") && html.contains(">eval_loss</text>"));
    assert_rendered(&html_path, dir.path());
}

#[test]
fn a_folder_that_is_neither_a_run_nor_a_training_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = curate().arg("report").arg(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds neither a run's stats.json nor a training run's metrics.jsonl"),
        "{}",
        stderr(&o)
    );
}
