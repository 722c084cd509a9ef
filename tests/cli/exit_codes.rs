//! The exit-code table of the README, class by class: 2 when the work is
//! refused before it starts (bad flag, bad configuration, unusable input, a
//! stage asked for too early), 1 when it started and failed (an output that
//! cannot be written, a damaged intermediate file). Each error names the
//! file or key at fault.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::util::*;

fn exits(out: &Output, code: i32, says: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for s in says {
        assert!(err.contains(s), "{s:?} not in: {err}");
    }
}

/// `curate ARGS...`, run to the end.
fn curate_with<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Output {
    curate().args(args).output().unwrap()
}

fn s(text: &str) -> &OsStr {
    OsStr::new(text)
}

fn corpus() -> PathBuf {
    root().join("fixtures/corpus/moby_dick.jsonl.zst")
}

fn tokenizer() -> PathBuf {
    root().join("fixtures/tokenizer.json")
}

/// A path that cannot be created: under a regular file.
fn unwritable(dir: &Path) -> PathBuf {
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    file.join("out")
}

fn signatures(input: &Path, work: &Path) -> Output {
    curate_with([
        s("dedup"),
        s("signatures"),
        s("--progress"),
        s("none"),
        s("--input"),
        input.as_os_str(),
        s("--work"),
        work.as_os_str(),
    ])
}

fn tokenize(input: &Path, tokenizer: &Path, output: &Path) -> Output {
    let (input, tokenizer, output) = (input.as_os_str(), tokenizer.as_os_str(), output.as_os_str());
    curate_with([
        s("tokenize"),
        s("--progress"),
        s("none"),
        s("--input"),
        input,
        s("--tokenizer"),
        tokenizer,
        s("--output"),
        output,
    ])
}

#[test]
fn a_bad_flag_exits_2() {
    exits(&curate_with(["run", "p.toml", "--frobnicate"]), 2, &["--frobnicate"]);
    let out = curate_with(["dedup", "signatures", "--input", "x", "--work", "w", "--method", "md5"]);
    exits(&out, 2, &["md5", "minhash"]);
    let out = curate_with(["tokenize", "--input", "x", "--tokenizer", "t", "--output", "o", "--threads", "0"]);
    exits(&out, 2, &["--threads must be at least 1"]);
}

#[test]
fn a_bad_configuration_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "[input]\npath = \"in\"\n[output]\npath = \"out\"\n[run]\nthreds = 2\n");
    exits(&run(&p, &[]), 2, &["pipeline.toml: run.threds: unknown field `threds`"]);
    exits(&curate_with([s("check"), p.as_os_str()]), 2, &["run.threds"]);
}

#[test]
fn unreadable_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let p = pipeline(
        dir.path(),
        &format!(
            "[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n",
            missing.display(),
            dir.path().join("o").display()
        ),
    );
    exits(&run(&p, &[]), 2, &["missing.jsonl does not exist"]);
    exits(&signatures(&missing, &dir.path().join("w")), 2, &["missing.jsonl does not exist"]);
    exits(&tokenize(&missing, &tokenizer(), &dir.path().join("t")), 2, &["missing.jsonl does not exist"]);
}

#[test]
fn an_unwritable_output_exits_1_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = unwritable(dir.path());
    let p = pipeline(
        dir.path(),
        &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n", corpus().display(), out_dir.display()),
    );
    exits(&run(&p, &[]), 1, &["cannot write", "a-file/out"]);
    exits(&signatures(&corpus(), &out_dir), 1, &["cannot write", "a-file/out/signatures"]);
    exits(&tokenize(&corpus(), &tokenizer(), &out_dir), 1, &["cannot write", "a-file/out"]);
}

#[test]
fn a_dedup_stage_asked_too_early_exits_2_and_a_damaged_one_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let clusters = || curate_with([s("dedup"), s("clusters"), s("--work"), work.as_os_str()]);
    exits(&clusters(), 2, &["signatures/params.json: missing", "curate dedup signatures"]);
    let out = signatures(&corpus(), &work);
    assert!(out.status.success(), "{}", stderr(&out));
    exits(&clusters(), 2, &["buckets/ranges.json: missing", "curate dedup buckets"]);
    let out = curate_with([s("dedup"), s("buckets"), s("--progress"), s("none"), s("--work"), work.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let edges =
        curate::dedup::buckets::edges_path(&work, curate::dedup::buckets::Part { band: 3, range: 0, ranges: 1 });
    std::fs::write(&edges, b"CURATEED damaged").unwrap();
    exits(&clusters(), 1, &["band-003.edges", "version"]);
}

#[test]
fn a_failed_tokenization_exits_by_its_class() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_tokenizer = dir.path().join("tokenizer.json");
    std::fs::write(&not_a_tokenizer, "{\"model\": 3}").unwrap();
    let out = tokenize(&corpus(), &not_a_tokenizer, &dir.path().join("t"));
    exits(&out, 2, &["tokenizer.json is not a usable tokenizer.json"]);
    // The spill folder of the encoding pass cannot be made: the run fails.
    let output = dir.path().join("t2");
    std::fs::create_dir(&output).unwrap();
    std::fs::write(output.join(".spill"), "").unwrap();
    exits(&tokenize(&corpus(), &tokenizer(), &output), 1, &["cannot write", "t2/.spill"]);
}

/// `curate check` validates a step's options without reading the files
/// they name; `curate run` reads them once, and refuses what does not load.
#[test]
fn checking_reads_no_model_or_removal_list() {
    let dir = tempfile::tempdir().unwrap();
    let arpa = dir.path().join("model.arpa");
    std::fs::write(&arpa, "not an ARPA model\n").unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("signatures")).unwrap();
    std::fs::create_dir_all(work.join("clusters")).unwrap();
    std::fs::write(work.join("signatures/params.json"), "{}").unwrap();
    std::fs::write(work.join("clusters/remove.dups"), "damaged").unwrap();
    let body = |step: &str| {
        format!(
            "[input]\npath = \"{}\"\n[[step]]\n{step}\n[output]\npath = \"{}\"\n",
            corpus().display(),
            dir.path().join("out").display()
        )
    };
    let steps = [
        format!("type = \"perplexity\"\npath = \"{}\"", arpa.display()),
        format!("type = \"dedup\"\nwork = \"{}\"", work.display()),
    ];
    for step in &steps {
        let p = pipeline(dir.path(), &body(step));
        let checked = curate_with([s("check"), p.as_os_str()]);
        assert!(checked.status.success(), "{step}: {}", stderr(&checked));
        exits(&run(&p, &[]), 2, &["step "]);
        // A step that does not build leaves no output folder to be refused later.
        assert!(!dir.path().join("out").exists());
    }
    let p = pipeline(dir.path(), &body(&steps[0]));
    exits(&run(&p, &[]), 2, &["step perplexity:", "model.arpa: not an ARPA model"]);
    let p = pipeline(dir.path(), &body(&steps[1]));
    exits(&run(&p, &[]), 2, &["step dedup:", "params.json: unreadable header"]);
    let missing = pipeline(dir.path(), &body("type = \"dedup\"\nwork = \"/nonexistent\""));
    let out = curate_with([s("check"), missing.as_os_str()]);
    exits(&out, 2, &["step[0]: /nonexistent/signatures/params.json: missing"]);
}

/// A run whose state or stats cannot be written fails (1), whichever file
/// it is: a unit's marker, the task's stats, the merged stats. See: issue
/// 13, defect 9.
#[test]
fn r13_a_state_or_stats_write_that_fails_exits_1() {
    for (blocked, names) in [
        (".curate/units/unit-000000.json", "unit-000000.json"),
        ("stats/rank-00000-of-00001.json", "rank-00000-of-00001.json"),
        ("stats.json", "stats.json"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let p = pipeline(
            dir.path(),
            &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n", corpus().display(), out.display()),
        );
        // A folder where the file goes: the write (a rename over it) fails.
        std::fs::create_dir_all(out.join(blocked)).unwrap();
        std::fs::write(out.join(blocked).join("x"), "").unwrap();
        exits(&run(&p, &[]), 1, &["cannot write", names]);
    }
}

/// `curate stats --world-size 0` is refused instead of writing empty stats
/// over the run's. See: issue 13, defect 10.
#[test]
fn r13_stats_of_no_task_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n", corpus().display(), out.display()),
    );
    run_ok(&p, &[]);
    let before = std::fs::read(out.join("stats.json")).unwrap();
    let refused = curate_with([s("stats"), out.as_os_str(), s("--world-size"), s("0")]);
    exits(&refused, 2, &["--world-size must be at least 1"]);
    assert_eq!(std::fs::read(out.join("stats.json")).unwrap(), before);
}

/// Sizes that would allocate without end, stall or silently drop
/// everything are refused before any work, naming the flag or key. See:
/// issue 13, defect 11.
#[test]
fn r13_unreasonable_sizes_and_thresholds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus();
    let work = dir.path().join("w");
    let out = curate_with([
        s("dedup"),
        s("signatures"),
        s("--input"),
        corpus.as_os_str(),
        s("--work"),
        work.as_os_str(),
        s("--bands"),
        s("100000"),
        s("--rows"),
        s("100000"),
    ]);
    exits(&out, 2, &["--bands × --rows (100000 × 100000) is more than 1048576 hash functions"]);
    let out = curate_with([
        s("tokenizer"),
        s("train"),
        s("--input"),
        corpus.as_os_str(),
        s("--output"),
        dir.path().join("t.json").as_os_str(),
        s("--vocab-size"),
        s("5000000000"),
    ]);
    exits(&out, 2, &["vocab_size 5000000000 is more than 16777216 tokens"]);
    let out = curate_with([s("run"), s("p.toml"), s("--rank"), s("0"), s("--world-size"), s("4294967296")]);
    exits(&out, 2, &[]);
    let body = |extra: &str| {
        format!(
            "[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n{extra}",
            corpus.display(),
            dir.path().join("out").display()
        )
    };
    let p = pipeline(dir.path(), &body(""));
    exits(
        &run(&p, &["--rank", "0", "--world-size", "4294967296"]),
        2,
        &["world size 4294967296 is more than 1048576 tasks"],
    );
    exits(&run(&p, &["--threads", "10000"]), 2, &["--threads 10000 is more than 1024"]);
    let p = pipeline(dir.path(), &body("[run]\nthreads = 10000\n"));
    exits(&run(&p, &[]), 2, &["run.threads: 10000 is more than 1024"]);
    for (step, says) in [
        ("type = \"gopher_quality\"\nmax_bullet_lines_ratio = nan", "step[0]: max_bullet_lines_ratio is not a number"),
        ("type = \"gopher_repetition\"\ndup_line_frac = -0.1", "step[0]: dup_line_frac -0.1 is not between 0 and 1"),
        ("type = \"fineweb_quality\"\nnew_line_ratio = -1.0", "step[0]: new_line_ratio -1 is not at least 0"),
        ("type = \"language\"\nmin_score = nan", "step[0]: min_score NaN is not between 0 and 1"),
    ] {
        let p = pipeline(dir.path(), &body(&format!("[[step]]\n{step}\n")));
        exits(&curate_with([s("check"), p.as_os_str()]), 2, &[says]);
    }
    assert!(!dir.path().join("out").exists() && !work.exists());
}
