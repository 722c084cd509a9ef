//! Data-parallel training end to end: the real `curate-train` as two and
//! three local ranks over Gloo (its own launcher, torchrun, and Slurm's
//! variables), against the same job on one rank.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// 20 steps of 8 sequences: one rank × 8, or two × 4. (At a learning rate
/// of 3e-3 this small model's gradient norm spikes at two steps, where the
/// fp32 summation order of a micro-batch of 8 against 4 moves it by 3e-5
/// relative: one process with 4 × 2 accumulated differs from 8 as much.)
const TRAINING: &str = "max_steps = 20\nbatch_size = 8\nglobal_batch_size = 8\nwarmup_steps = 5\nlearning_rate = 1e-3";
const TWO_RANKS: &str = "batch_size = 4";

fn ranks(n: usize, config: &Path, extra: &[&str]) -> Output {
    trainer().arg("train").arg(config).args(["--nproc-per-node", &n.to_string()]).args(extra).output().unwrap()
}

/// `n` ranks with one test hook set.
fn ranks_hooked(n: usize, config: &Path, hook: &str, value: &str) -> Output {
    trainer().arg("train").arg(config).args(["--nproc-per-node", &n.to_string()]).env(hook, value).output().unwrap()
}

fn ranks_ok(n: usize, config: &Path, extra: &[&str]) -> Output {
    let out = ranks(n, config, extra);
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// (loss, grad_norm) of every step.
fn losses(run: &Path) -> Vec<(f64, f64)> {
    metrics(run)
        .iter()
        .filter(|m| m.get("loss").is_some())
        .map(|m| (m["loss"].as_f64().unwrap(), m["grad_norm"].as_f64().unwrap()))
        .collect()
}

fn assert_close(a: &[(f64, f64)], b: &[(f64, f64)], tolerance: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: step counts");
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        for (u, v, name) in [(x.0, y.0, "loss"), (x.1, y.1, "grad_norm")] {
            assert!((u - v).abs() <= tolerance * u.abs(), "{what}: step {} {name} {u} vs {v}", step + 1);
        }
    }
}

/// The largest relative difference between two checkpoints' weights,
/// tensor by tensor: ‖a − b‖ / ‖a‖.
fn weight_difference(a: &Path, b: &Path) -> f64 {
    let read = |dir: &Path| tch::Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    let (mut a, mut b) = (read(a), read(b));
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a.len(), b.len());
    let mut worst: f64 = 0.0;
    for ((name, x), (other, y)) in a.iter().zip(&b) {
        assert_eq!(name, other);
        let scale = x.norm().double_value(&[]).max(1e-12);
        worst = worst.max((x - y).norm().double_value(&[]) / scale);
    }
    worst
}

#[test]
fn two_ranks_follow_one_rank_with_the_same_global_batch_for_ddp_zero1_and_zero2() {
    let single = tempfile::tempdir().unwrap();
    train_ok(&config(single.path(), LLAMA, "", TRAINING), &[]);
    let reference = losses(&single.path().join("run"));
    assert_eq!(reference.len(), 20);
    let (mut state_bytes, mut gradient_bytes) = (Vec::new(), Vec::new());
    for zero in 0..=2 {
        let dir = tempfile::tempdir().unwrap();
        let c = config_with(
            dir.path(),
            LLAMA,
            "",
            &format!("{TRAINING}\n{TWO_RANKS}"),
            &format!("zero = {zero}\nbucket_mb = 0.05"),
        );
        let out = ranks_ok(2, &c, &[]);
        let log = stderr(&out);
        assert!(log.contains("data parallel: 2 ranks"), "{log}");
        assert_eq!(log.matches("trained 20 steps").count(), 1, "rank 0 alone reports: {log}");
        let run = dir.path().join("run");
        assert_close(&reference, &losses(&run), 1e-5, &format!("zero = {zero}"));
        if zero == 0 {
            // Averaging over ranks adds no error of its own: two ranks × 4
            // are bit for bit one rank × 4 accumulated twice.
            let accumulated = tempfile::tempdir().unwrap();
            train_ok(&config(accumulated.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}")), &[]);
            assert_eq!(trajectory(&accumulated.path().join("run")), trajectory(&run));
        }
        let last = dir.path().join("run/checkpoints/step-00000020");
        let difference = weight_difference(&single.path().join("run/checkpoints/step-00000020"), &last);
        assert!(difference < 1e-5, "zero = {zero}: final weights differ by {difference}");
        let m = metrics(&run);
        let step = m.iter().rfind(|m| m.get("loss").is_some()).unwrap();
        assert_eq!(step["ranks"], 2);
        assert_eq!(step["tokens"], 20 * 8 * 64, "tokens count every rank's");
        assert_eq!(step["peak_rss_bytes"].as_array().unwrap().len(), 2);
        state_bytes.push(step["optimizer_state_bytes"].as_u64().unwrap());
        gradient_bytes.push(step["gradient_bytes"].as_u64().unwrap());
    }
    // ZeRO-2 keeps only its share of the reduced gradients.
    let ratio = gradient_bytes[2] as f64 / gradient_bytes[0] as f64;
    assert!((0.5..0.51).contains(&ratio), "gradient bytes per rank {gradient_bytes:?}");
    assert_eq!(gradient_bytes[0], gradient_bytes[1]);
    // ZeRO keeps half of AdamW's state on each of two ranks (plus padding).
    for sharded in &state_bytes[1..] {
        let ratio = *sharded as f64 / state_bytes[0] as f64;
        assert!((0.5..0.51).contains(&ratio), "optimizer state per rank {state_bytes:?}");
    }
}

#[test]
fn a_killed_job_resumes_bit_identical_on_as_many_ranks_and_continues_on_another_number() {
    // 12 sequences a step: 2 ranks × 2 × 3 micro-batches, 3 × 2 × 2, 1 × 2 × 6.
    let training = "max_steps = 10\nbatch_size = 2\nglobal_batch_size = 12\ncheckpoint_interval = 4\nwarmup_steps = 3";
    let distributed = "zero = 1\nbucket_mb = 0.05";
    let whole = tempfile::tempdir().unwrap();
    ranks_ok(2, &config_with(whole.path(), LLAMA, "", training, distributed), &[]);
    let reference = whole.path().join("run");

    let killed = tempfile::tempdir().unwrap();
    let c = config_with(killed.path(), LLAMA, "", training, distributed);
    let out = ranks_hooked(2, &c, curate_trainer::hooks::ABORT_AFTER_STEP, "6");
    assert!(!out.status.success(), "the abort hook should have ended the job");
    assert!(stderr(&out).contains("SIGABRT"), "{}", stderr(&out));
    let run = killed.path().join("run");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "step-00000004");
    let copy = |to: &Path| {
        std::fs::create_dir_all(to.join("checkpoints/step-00000004")).unwrap();
        for f in ["metrics.jsonl", "checkpoints/latest"] {
            std::fs::copy(run.join(f), to.join(f)).unwrap();
        }
        for f in std::fs::read_dir(run.join("checkpoints/step-00000004")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join("checkpoints/step-00000004").join(f.file_name())).unwrap();
        }
    };
    let (three, one) = (killed.path().join("three"), killed.path().join("one"));
    copy(&three);
    copy(&one);

    ranks_ok(2, &c, &["--resume"]);
    assert_eq!(trajectory(&run), trajectory(&reference), "same ranks: bit-identical");
    for file in ["model.safetensors", "optimizer.safetensors", "trainer_state.json"] {
        let a = std::fs::read(reference.join("checkpoints/step-00000010").join(file)).unwrap();
        let b = std::fs::read(run.join("checkpoints/step-00000010").join(file)).unwrap();
        assert!(a == b, "{file} differs after resuming on 2 ranks");
    }

    // Another world: the same global batch sequence, split differently.
    let zero2 = config_with(killed.path(), LLAMA, "", training, "zero = 2\nbucket_mb = 0.05");
    let out = ranks_ok(3, &zero2, &["--resume", "--output", three.to_str().unwrap()]);
    assert!(stderr(&out).contains("(step 4)") && stderr(&out).contains("3 ranks"), "{}", stderr(&out));
    train_ok(&c, &["--resume", "--output", one.to_str().unwrap()]);
    let expected = losses(&reference);
    assert_close(&expected, &losses(&three), 1e-4, "resumed on 3 ranks");
    assert_close(&expected, &losses(&one), 1e-4, "resumed on 1 rank");
    let last = reference.join("checkpoints/step-00000010");
    for other in [&three, &one] {
        let difference = weight_difference(&last, &other.join("checkpoints/step-00000010"));
        assert!(difference < 1e-4, "{}: weights differ by {difference}", other.display());
    }
}

#[test]
fn a_rank_killed_with_sigkill_ends_the_job_naming_it_and_leaves_the_checkpoint_whole() {
    let dir = tempfile::tempdir().unwrap();
    let training = format!("{TRAINING}\n{TWO_RANKS}\ncheckpoint_interval = 2");
    let c = config_with(dir.path(), LLAMA, "", &training, "zero = 2");
    let out = ranks_hooked(2, &c, curate_trainer::hooks::KILL_RANK_AFTER_STEP, "1:3");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out);
    assert!(log.contains("rank 1") && log.contains("SIGKILL"), "{log}");
    let run = dir.path().join("run");
    assert_eq!(std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(), "step-00000002");
    let leftovers: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The checkpoint is whole: the job resumes from it to the end.
    ranks_ok(2, &c, &["--resume"]);
    assert_eq!(losses(&run).len(), 20);
}

/// A scheduler's SIGTERM to the launcher reaches every rank: the job stops
/// mid-run (it would otherwise finish and exit 0).
#[test]
fn the_launcher_forwards_sigterm_to_the_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}"));
    let out = ranks_hooked(2, &c, curate_trainer::hooks::TERMINATE_LAUNCHER_AFTER_STEP, "2");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("was killed by SIGTERM"), "{}", stderr(&out));
    assert!(losses(&dir.path().join("run")).len() < 20);
}

#[test]
fn a_hung_rank_fails_the_job_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = config_with(dir.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}"), "timeout_s = 2");
    let out = ranks_hooked(2, &c, curate_trainer::hooks::STOP_RANK_AFTER_STEP, "1:3");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out);
    // Gloo words it "Timed out waiting 2000ms ..." or "Application timeout
    // caused pair closure", depending on where the wait was.
    let lower = log.to_lowercase();
    assert!(log.contains("rank 0: averaging the gradients failed"), "{log}");
    assert!(lower.contains("timed out") || lower.contains("timeout"), "{log}");
    assert!(log.contains("rank 0 (pid") && log.contains("stopping rank(s) 1"), "{log}");
}

/// torch's own launcher, from the venv the build uses (first on PATH).
#[test]
fn torchrun_starts_the_ranks_with_its_agent_store() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}"));
    let mut torchrun = Command::new("python3");
    for name in LAUNCH_VARS.iter().chain(curate_trainer::hooks::ALL) {
        torchrun.env_remove(name);
    }
    let out = torchrun
        .args(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_curate-train"))
        .arg("train")
        .arg(&c)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 ranks (torchrun"), "{}", stderr(&out));
    let ours = tempfile::tempdir().unwrap();
    ranks_ok(2, &config(ours.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}")), &[]);
    assert_eq!(trajectory(&dir.path().join("run")), trajectory(&ours.path().join("run")));
}

/// Slurm's variables, as srun sets them for two tasks on one node: rank 0
/// hosts the store on the first node of the list.
#[test]
fn slurm_variables_make_the_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), LLAMA, "", &format!("{TRAINING}\n{TWO_RANKS}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let children: Vec<_> = (0..2)
        .map(|rank| {
            trainer()
                .arg("train")
                .arg(&c)
                .env("SLURM_PROCID", rank.to_string())
                .env("SLURM_LOCALID", rank.to_string())
                .env("SLURM_NTASKS", "2")
                .env("SLURM_JOB_NODELIST", "localhost")
                .env("MASTER_PORT", port.to_string())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for out in &outs {
        assert!(out.status.success(), "{}", stderr(out));
    }
    assert!(stderr(&outs[0]).contains("2 ranks (slurm"), "{}", stderr(&outs[0]));
    assert_eq!(losses(&dir.path().join("run")).len(), 20);
}

#[test]
fn a_global_batch_the_ranks_cannot_split_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), LLAMA, "", "max_steps = 2\nbatch_size = 4\nglobal_batch_size = 12");
    let out = ranks(2, &c, &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("training.global_batch_size: 12 is not a positive multiple of batch_size 4 × 2 ranks")
    );
    assert!(!dir.path().join("run/metrics.jsonl").exists());
    let bad = config_with(dir.path(), LLAMA, "", "max_steps = 2", "zero = 3");
    let out = ranks(2, &bad, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("distributed.zero: 3 is not 0, 1 or 2"), "{}", stderr(&out));
}
