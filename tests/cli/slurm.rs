//! `curate slurm` and `curate status` on a real one-node Slurm cluster:
//! Debian's slurmctld, slurmd and munge (installed by scripts/slurm.sh),
//! configured in a temporary folder, started by the test and stopped when
//! it ends. The jobs' outputs are compared with the same work run locally.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::s3::S3Server;
use crate::util::{curate, generate_docs, snapshot, stats, write_jsonl};

struct Cluster {
    conf: PathBuf,
    daemons: Vec<Child>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn munge_answers() -> bool {
    let Ok(mut encode) = Command::new("munge").arg("-n").stdout(Stdio::piped()).stderr(Stdio::null()).spawn() else {
        return false;
    };
    let credential = encode.stdout.take().unwrap();
    let decoded = Command::new("unmunge").stdin(credential).stdout(Stdio::null()).stderr(Stdio::null()).status();
    encode.wait().is_ok_and(|s| s.success()) && decoded.is_ok_and(|s| s.success())
}

/// Waits until `ready` holds (a daemon has made its socket), failing
/// after two minutes or when `daemon` exits first.
fn wait_until(what: &str, daemon: &mut Child, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !ready() {
        assert!(daemon.try_wait().unwrap().is_none(), "{what}: the daemon exited");
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

impl Cluster {
    /// Starts munge (unless it already answers), slurmctld and slurmd with
    /// a configuration of their own; `None` (and why on stderr) where
    /// scripts/slurm.sh said the packages cannot be installed.
    fn start() -> Option<Cluster> {
        match std::env::var("CURATE_SLURM").as_deref() {
            Ok("1") => {}
            Ok(why) => {
                eprintln!("skipped: Slurm is not installed here ({why})");
                return None;
            }
            Err(_) => panic!("CURATE_SLURM is not set: run the tests through scripts/test.sh, or run scripts/slurm.sh and export CURATE_SLURM=1"),
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir(d.join(sub)).unwrap();
        }
        let mut daemons = Vec::new();
        if !munge_answers() {
            let munged = Command::new("munged").args(["--force", "--foreground"]).stderr(Stdio::null()).spawn();
            let mut munged = munged.expect("munged starts");
            // Not the socket's existence: a munged killed earlier may have left it.
            wait_until("munged answers", &mut munged, munge_answers);
            daemons.push(munged);
        }
        let host = String::from_utf8(Command::new("hostname").arg("-s").output().unwrap().stdout).unwrap();
        let host = host.trim();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let conf = d.join("slurm.conf");
        let ctld_port = free_port();
        let path = |p: &str| d.join(p).display().to_string();
        std::fs::write(
            &conf,
            format!(
                "ClusterName=curatetest\nSlurmctldHost={host}\nSlurmctldPort={}\nSlurmdPort={}\nSlurmUser=root\n\
                 AuthType=auth/munge\nStateSaveLocation={}\nSlurmdSpoolDir={}\nSlurmctldPidFile={}\nSlurmdPidFile={}\n\
                 SlurmctldLogFile={}\nSlurmdLogFile={}\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
                 MpiDefault=none\nSchedulerType=sched/backfill\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n\
                 ReturnToService=2\nNodeName={host} CPUs={cpus} State=UNKNOWN\n\
                 PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
                ctld_port,
                free_port(),
                path("state"),
                path("spool"),
                path("ctld.pid"),
                path("d.pid"),
                path("log/ctld.log"),
                path("log/d.log"),
            ),
        )
        .unwrap();
        for daemon in ["slurmctld", "slurmd"] {
            let mut child = Command::new(daemon);
            child.arg("-D").arg("-f").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
            daemons.push(child.spawn().unwrap_or_else(|e| panic!("{daemon} starts: {e}")));
        }
        // Jobs submitted before slurmd has registered the node wait for it.
        let at = daemons.len() - 2;
        let ctld = &mut daemons[at];
        wait_until("slurmctld listens", ctld, || std::net::TcpStream::connect(("127.0.0.1", ctld_port)).is_ok());
        Some(Cluster { conf, daemons, _dir: dir })
    }

    /// `curate ARGS` in `dir`, talking to this cluster.
    fn curate(&self, dir: &Path, args: &[&str]) -> Output {
        curate().env("SLURM_CONF", &self.conf).current_dir(dir).args(args).output().unwrap()
    }
}

impl Drop for Cluster {
    /// Stops slurmd and slurmctld (their files are in the temporary
    /// folder), then munged, if the test started it, with SIGTERM: it
    /// removes its socket as it exits.
    fn drop(&mut self) {
        let munged = self.daemons.len() == 3;
        for (i, daemon) in self.daemons.iter_mut().enumerate().rev() {
            match munged && i == 0 {
                true => drop(Command::new("kill").arg("-TERM").arg(daemon.id().to_string()).status()),
                false => drop(daemon.kill()),
            }
            let _ = daemon.wait();
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "curate failed: {}", text(&out));
    text(&out)
}

/// One test, so that one cluster serves every case: a pipeline as a job
/// array, a dry run, a resubmission of only the unfinished tasks, status
/// with a failed task and its error, a dedup chain, and an output in S3.
#[test]
fn pipelines_and_dedup_chains_run_on_a_real_slurm_cluster_as_they_run_locally() {
    let Some(cluster) = Cluster::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("in")).unwrap();
    let docs = generate_docs(240, 3);
    for (i, chunk) in docs.chunks(40).enumerate() {
        write_jsonl(&d.join(format!("in/{i}.jsonl")), chunk);
    }
    // Copies of two files, for the dedup chain to find.
    write_jsonl(&d.join("in/copies.jsonl"), &docs[..50]);
    let filter = "[output]\nformat = \"jsonl\"\nrejected = true\n[[step]]\ntype = \"length\"\nmin_chars = 400\n";
    std::fs::write(
        d.join("p.toml"),
        format!("[input]\npath = \"in\"\n{}", filter.replace("[output]", "[output]\npath = \"out\"")),
    )
    .unwrap();
    ok(cluster.curate(d, &["run", "p.toml", "--output", "local", "--progress", "none"]));

    // A dry run prints the array and submits nothing.
    let dry =
        ok(cluster
            .curate(d, &["slurm", "p.toml", "--tasks", "3", "--dry-run", "--partition", "debug", "--time", "10:00"]));
    assert!(dry.contains("#SBATCH --array=0-2") && dry.contains("#SBATCH --partition=debug"), "{dry}");
    assert!(dry.contains("--rank ${SLURM_ARRAY_TASK_ID} --world-size 3"), "{dry}");
    assert!(!d.join("out").exists(), "a dry run writes nothing");

    // The array runs; its output is the local run's, with one log per task.
    let said = ok(cluster.curate(d, &["slurm", "p.toml", "--tasks", "3", "--wait"]));
    assert!(said.contains("submitted run as job") && said.contains("tasks 0-2 of 3"), "{said}");
    assert_eq!(
        snapshot(&d.join("out")).into_iter().filter(|(k, _)| !k.starts_with("slurm/")).collect::<Vec<_>>(),
        snapshot(&d.join("local")).into_iter().collect::<Vec<_>>()
    );
    assert_eq!(stats(&d.join("out"))["kept_docs"], stats(&d.join("local"))["kept_docs"]);
    let logs: Vec<String> = std::fs::read_dir(d.join("out/slurm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    assert_eq!(logs.len(), 3, "{logs:?}");
    let status = ok(cluster.curate(d, &["status", "out"]));
    assert!(status.contains("run: 3 of 3 done, 0 pending, 0 running, 0 failed"), "{status}");

    // Nothing to do once complete; a task without its marker is the only one submitted again.
    assert!(ok(cluster.curate(d, &["slurm", "p.toml", "--tasks", "3"])).contains("nothing to submit"));
    std::fs::remove_file(d.join("out/stats/rank-00001-of-00003.json")).unwrap();
    let again = ok(cluster.curate(d, &["slurm", "p.toml", "--tasks", "3", "--wait"]));
    assert!(again.contains("tasks 1 of 3"), "{again}");
    assert!(ok(cluster.curate(d, &["status", "out"])).contains("run: 3 of 3 done"));

    // A failing task is shown as failed, with its error; status exits 1.
    std::fs::write(d.join("bad.toml"), "[input]\npath = \"nowhere\"\n[output]\npath = \"bad\"\n").unwrap();
    let failed = cluster.curate(d, &["slurm", "bad.toml", "--tasks", "2", "--wait"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let status = cluster.curate(d, &["status", "bad"]);
    assert_eq!(status.status.code(), Some(1));
    let status = text(&status);
    assert!(status.contains("2 failed") && status.contains("input nowhere does not exist"), "{status}");

    // A pipeline with a dedup step: signatures, buckets, clusters, then the
    // run, chained; the same output as the stages run here one by one.
    let dedup = |out: &str, work: &str| {
        format!("[input]\npath = \"in\"\n[output]\npath = \"{out}\"\nformat = \"jsonl\"\n[[step]]\ntype = \"dedup\"\nwork = \"{work}\"\n")
    };
    std::fs::write(d.join("dedup.toml"), dedup("deduped", "work")).unwrap();
    std::fs::write(d.join("dedup-local.toml"), dedup("deduped-local", "work-local")).unwrap();
    let chain = ok(cluster.curate(d, &["slurm", "dedup.toml", "--tasks", "3", "--dry-run"]));
    assert_eq!(chain.matches("#!/bin/bash").count(), 4, "{chain}");
    let said = ok(cluster.curate(d, &["slurm", "dedup.toml", "--tasks", "3", "--wait"]));
    for stage in ["signatures", "buckets", "clusters", "run"] {
        assert!(said.contains(&format!("submitted {stage} as job")), "{said}");
    }
    ok(cluster.curate(d, &["dedup", "all", "--input", "in", "--work", "work-local", "--progress", "none"]));
    ok(cluster.curate(d, &["run", "dedup-local.toml", "--progress", "none"]));
    let deduped = stats(&d.join("deduped"));
    assert_eq!(deduped["dropped_docs"], 50, "the copies are dropped: {deduped}");
    assert_eq!(
        snapshot(&d.join("deduped")).into_iter().filter(|(k, _)| !k.starts_with("slurm/")).collect::<Vec<_>>(),
        snapshot(&d.join("deduped-local")).into_iter().collect::<Vec<_>>()
    );
    let status = ok(cluster.curate(d, &["status", "deduped"]));
    for stage in ["signatures: 3 of 3 done", "buckets: 3 of 3 done", "clusters: 1 of 1 done", "run: 3 of 3 done"] {
        assert!(status.contains(stage), "{status}");
    }

    // Tasks on the cluster writing to S3: the same shards; the last task to
    // finish merges every task's stats from the store.
    let server = S3Server::start();
    server.client(&["mkbucket", "bkt"]);
    std::fs::write(
        d.join("s3.toml"),
        format!("[input]\npath = \"in\"\n{}", filter.replace("[output]", "[output]\npath = \"s3://bkt/out\"")),
    )
    .unwrap();
    let mut submit = curate();
    submit.env("SLURM_CONF", &cluster.conf).current_dir(d).envs(server.environment(&d.join("staging")));
    let out = submit.args(["slurm", "s3.toml", "--tasks", "2", "--logs", "s3-logs", "--wait"]).output().unwrap();
    ok(out);
    let remote = server.download("bkt", "out", &d.join("from-s3"));
    let local = snapshot(&d.join("local"));
    assert_eq!(remote.keys().collect::<Vec<_>>(), local.keys().collect::<Vec<_>>());
    assert!(remote == local, "the same shards");
    assert_eq!(stats(&d.join("from-s3"))["kept_docs"], stats(&d.join("local"))["kept_docs"]);
    let mut status = curate();
    status.env("SLURM_CONF", &cluster.conf).current_dir(d).envs(server.environment(&d.join("staging")));
    let status = ok(status.args(["status", "s3://bkt/out", "--logs", "s3-logs"]).output().unwrap());
    assert!(status.contains("run: 2 of 2 done"), "the markers are found in the store: {status}");
}
