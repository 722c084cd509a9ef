//! Tasks split the input disjointly, a large file among them too, and
//! together write what one task would.

use std::collections::BTreeSet;

use crate::util::*;

#[test]
fn three_tasks_cover_the_input_exactly_once_and_match_one_task() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.jsonl");
    write_jsonl(&input, &generate_docs(1500, 3));
    let body = |out: &std::path::Path| {
        format!(
            "[input]\npath = \"{}\"\nsplit_bytes = 50000\nbatch_size = 100\n[[step]]\ntype = \"length\"\nmin_chars = 300\n\
             [output]\npath = \"{}\"\nformat = \"jsonl\"\nrejected = true\n",
            input.display(),
            out.display()
        )
    };
    let single = dir.path().join("single");
    let p = pipeline(dir.path(), &body(&single));
    run_ok(&p, &[]);

    let multi = dir.path().join("multi");
    let p = pipeline(dir.path(), &body(&multi));
    for rank in ["2", "0"] {
        let out = run_ok(&p, &["--rank", rank, "--world-size", "3"]);
        assert!(stderr(&out).contains("stats.json is written when the last task finishes"));
        assert!(!multi.join("stats.json").exists());
    }
    let out = curate().arg("stats").arg(&multi).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("1 of 3 tasks have not finished: ranks [1]"), "{}", stderr(&out));
    // The last task comes from the environment, as under torchrun.
    let out = curate()
        .arg("run")
        .arg(&p)
        .args(["--progress", "none"])
        .env("RANK", "1")
        .env("WORLD_SIZE", "3")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let mut per_task = Vec::new();
    for rank in 0..3 {
        let s: serde_json::Value =
            serde_json::from_slice(&std::fs::read(multi.join(format!("stats/rank-{rank:05}-of-00003.json"))).unwrap())
                .unwrap();
        assert_invariant(&s);
        assert!(s["input_docs"].as_u64().unwrap() > 0, "rank {rank} got part of the one big file");
        per_task.push(s["input_docs"].as_u64().unwrap());
    }
    assert_eq!(per_task.iter().sum::<u64>(), 1500);
    let merged = stats(&multi);
    assert_eq!(merged["input_docs"], 1500);
    assert_eq!(merged["kept_docs"], stats(&single)["kept_docs"]);

    assert_eq!(snapshot(&single), snapshot(&multi));
    let all: Vec<String> = [jsonl_docs(&multi), jsonl_docs(&multi.join("rejected"))]
        .concat()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (1500, 1500), "every document exactly once");

    let out = curate().arg("stats").arg(&multi).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn a_rank_outside_the_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path(), "[input]\npath = \"x\"\n[output]\npath = \"y\"\n");
    let out = curate()
        .arg("run")
        .arg(&p)
        .env("SLURM_ARRAY_TASK_ID", "4")
        .env("SLURM_ARRAY_TASK_COUNT", "4")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("rank 4 is not below world size 4 (from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)"));
}
