//! A task killed with SIGKILL and run again writes exactly what an
//! uninterrupted run writes.

use curate::runtime::hooks;

use crate::util::*;

fn body(input: &std::path::Path, out: &std::path::Path, min_chars: u32) -> String {
    format!(
        "[input]\npath = \"{}\"\nsplit_bytes = 40000\nbatch_size = 50\n[[step]]\ntype = \"length\"\nmin_chars = {min_chars}\n\
         [output]\npath = \"{}\"\nshard_bytes = 8000\nrow_group_rows = 20\nrejected = true\n",
        input.display(),
        out.display()
    )
}

#[test]
fn sigkill_then_resume_gives_byte_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let docs = generate_docs(2400, 5);
    write_jsonl(&input.join("a.jsonl"), &docs[..1600]);
    write_jsonl_zst(&input.join("b.jsonl.zst"), &docs[1600..]);

    let clean = dir.path().join("clean");
    run_ok(&pipeline(dir.path(), &body(&input, &clean, 300)), &[]);

    let killed = dir.path().join("killed");
    let p = pipeline(dir.path(), &body(&input, &killed, 300));
    kill_at_pause(
        curate().arg("run").arg(&p).args(["--progress", "none", "--threads", "1"]).env(hooks::PAUSE_AFTER_BATCHES, "9"),
        || {},
    );

    // Killed mid-unit: some units committed, one half-written under temporary names.
    let entries: Vec<String> =
        std::fs::read_dir(&killed).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    // The paused batch is the kept writer's or the rejected one's, whichever wrote the 9th.
    let all = files_under(&killed);
    assert!(all.iter().any(|n| n.ends_with(".tmp")), "{all:?}");
    assert!(entries.iter().any(|n| n.starts_with("part-000000-")), "{entries:?}");
    assert!(!killed.join("stats.json").exists());

    let out = run_ok(&p, &["--threads", "2"]);
    assert!(stderr(&out).contains("kept"));
    assert_eq!(snapshot(&clean), snapshot(&killed));
    let (a, b) = (stats(&clean), stats(&killed));
    for k in ["input_docs", "kept_docs", "dropped_docs", "error_docs", "units", "output_files"] {
        assert_eq!(a[k], b[k], "{k}");
    }

    let again = run_ok(&p, &[]);
    assert!(stderr(&again).contains("already complete"));
    assert_eq!(snapshot(&clean), snapshot(&killed));
}

#[test]
fn resuming_with_a_different_pipeline_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &generate_docs(10, 1));
    let out = dir.path().join("out");
    run_ok(&pipeline(dir.path(), &body(&input, &out, 300)), &[]);
    let changed = run(&pipeline(dir.path(), &body(&input, &out, 301)), &[]);
    assert_eq!(changed.status.code(), Some(2));
    assert!(stderr(&changed).contains("holds the output of a different pipeline or input"), "{}", stderr(&changed));
}

/// A second run of the same task while the first holds the folder is
/// refused at once, instead of racing it over the same files. See: issue
/// 13, defect 12.
#[test]
fn r13_a_second_run_of_a_running_task_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    write_jsonl(&input, &generate_docs(10, 2));
    let out = dir.path().join("out");
    let p = pipeline(
        dir.path(),
        &format!("[input]\npath = \"{}\"\n[output]\npath = \"{}\"\n", input.display(), out.display()),
    );
    // The lock a running task holds, taken here as that task would.
    std::fs::create_dir_all(out.join("stats")).unwrap();
    let lock = std::fs::File::create(out.join("stats/.rank-00000-of-00001.lock")).unwrap();
    lock.lock().unwrap();
    let refused = run(&p, &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("another curate is running task 0 of 1 in this folder"), "{}", stderr(&refused));
    // Another task of the same run is not held up.
    run_ok(&p, &["--rank", "1", "--world-size", "2"]);
    drop(lock);
    run_ok(&p, &[]);
}
