//! Inputs and outputs in an object store, against a real S3 server (moto's,
//! from scripts/s3-server.sh) that each test starts on a loopback port and
//! stops when it ends. Objects are put and fetched with boto3, a client
//! independent of ours; faults come from a proxy between curate and the
//! server that answers 503 or cuts a connection mid-upload.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use curate::runtime::hooks;

use crate::util::{curate, generate_docs, kill_at_pause, root, snapshot, stats, write_jsonl};

/// A moto S3 server on a free loopback port, stopped on drop.
pub struct S3Server {
    child: Child,
    endpoint: String,
}

fn python() -> PathBuf {
    std::env::var_os("CURATE_S3_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        panic!("CURATE_S3_PYTHON is not set: run the tests through scripts/test.sh, or export CURATE_S3_PYTHON=$(scripts/s3-server.sh)")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts connections on `port` (the server has
/// started), or panics after a minute.
fn wait_for(port: u16, child: &mut Child) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the S3 server exited before it listened");
        assert!(std::time::Instant::now() < deadline, "the S3 server did not listen on {port} within a minute");
        std::thread::yield_now();
    }
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = free_port();
        let mut child = Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts");
        wait_for(port, &mut child);
        S3Server { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// boto3 against this server (tests/reference/s3_objects.py).
    pub fn client(&self, args: &[&str]) -> String {
        let out = Command::new(python())
            .arg(root().join("tests/reference/s3_objects.py"))
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .envs(credentials())
            .output()
            .unwrap();
        assert!(out.status.success(), "s3_objects.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Everything under `s3://bucket/prefix/`, by path relative to it,
    /// after checking that no multipart upload was left unfinished.
    pub fn download(&self, bucket: &str, prefix: &str, into: &Path) -> BTreeMap<String, Vec<u8>> {
        let pending = self.client(&["download", bucket, prefix, into.to_str().unwrap()]);
        assert_eq!(pending.trim(), "0", "no multipart upload is left unfinished");
        snapshot(into)
    }
}

impl S3Server {
    /// What curate needs in its environment to use this server, staging
    /// under `staging`.
    pub fn environment(&self, staging: &Path) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> =
            credentials().iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.push(("AWS_ENDPOINT_URL".into(), self.endpoint.clone()));
        vars.push(("CURATE_STAGING".into(), staging.display().to_string()));
        vars
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn credentials() -> [(&'static str, &'static str); 3] {
    [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"), ("AWS_REGION", "us-east-1")]
}

/// `curate` talking to the store at `endpoint`, staging under `staging`.
fn curate_s3(endpoint: &str, staging: &Path) -> Command {
    let mut cmd = curate();
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint).env("CURATE_STAGING", staging).envs(credentials());
    cmd
}

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "curate failed: {err}");
    err
}

/// The fixtures' main job (three formats, every kind of step, then token
/// shards) from S3 to S3 writes the same shards, rejects and token shards
/// as the same job on local folders, and the stats of the same run.
#[test]
fn the_main_job_from_s3_to_s3_writes_what_a_local_run_writes() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    server.client(&["mkbucket", "corpus"]);
    server.client(&["upload", root().join("fixtures/corpus").to_str().unwrap(), "corpus", "raw"]);
    let pipeline = root().join("fixtures/pipeline.toml");
    let local = dir.path().join("local");
    let run = |input: &str, output: &str| {
        curate_s3(&server.endpoint, &dir.path().join("staging"))
            .current_dir(root())
            .args(["run", pipeline.to_str().unwrap(), "--progress", "none", "--input", input, "--output", output])
            .output()
            .unwrap()
    };
    ok(run("fixtures/corpus", local.to_str().unwrap()));
    let said = ok(run("s3://corpus/raw", "s3://corpus/curated"));
    assert!(said.contains("stats in s3://corpus/curated/stats.json"), "{said}");
    let remote = server.download("corpus", "curated", &dir.path().join("remote"));
    assert!(
        remote.contains_key("tokens/manifest.json") && !remote.keys().any(|k| k.contains(".spill")),
        "{:?}",
        remote.keys()
    );
    // Token shards' bookkeeping holds timings, as the run's does (which
    // `snapshot` leaves out); the lock a task holds is the local disk's.
    let shards = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        files.into_iter().filter(|(k, _)| !k.contains(".curate/") && !k.ends_with("stats.json")).collect()
    };
    let remote = shards(remote);
    let expected = shards(snapshot(&local));
    assert!(expected.keys().any(|k| k.starts_with("tokens/")), "the job writes token shards: {:?}", expected.keys());
    assert!(expected.keys().any(|k| k.starts_with("rejected/part-")));
    assert_eq!(remote.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    let differing: Vec<_> = expected.keys().filter(|k| remote.get(*k) != expected.get(*k)).collect();
    assert!(differing.is_empty(), "the same bytes in every file: {differing:?}");
    let (l, r) = (stats(&local), stats(&dir.path().join("remote")));
    for key in ["input_docs", "kept_docs", "dropped_docs", "error_docs", "dropped_by_reason"] {
        assert_eq!(l[key], r[key], "{key}");
    }
    let as_run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("remote/.curate/pipeline.json")).unwrap()).unwrap();
    assert_eq!(as_run["output"]["path"], "s3://corpus/curated", "the pipeline is recorded with the output as given");
    // A tokenizer trained on the curated output in the store, written to
    // the store, is the one trained on the local output.
    let train = |input: &str, output: &str| {
        curate_s3(&server.endpoint, &dir.path().join("staging"))
            .args(["tokenizer", "train", "--input", input, "--output", output, "--vocab-size", "400", "--threads", "1"])
            .output()
            .unwrap()
    };
    ok(train(local.to_str().unwrap(), dir.path().join("local-tokenizer.json").to_str().unwrap()));
    ok(train("s3://corpus/curated", "s3://corpus/tokenizer.json"));
    server.client(&["get", "corpus", "tokenizer.json", dir.path().join("remote-tokenizer.json").to_str().unwrap()]);
    assert_eq!(
        std::fs::read(dir.path().join("remote-tokenizer.json")).unwrap(),
        std::fs::read(dir.path().join("local-tokenizer.json")).unwrap()
    );
    // The staging folders are gone; what the task asked of the store is recorded.
    let staging: Vec<String> = std::fs::read_dir(dir.path().join("staging/curate-staging"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(staging.iter().all(|n| n.starts_with('.') && n.ends_with(".lock")), "only the locks stay: {staging:?}");
    let storage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("remote/.curate/storage/rank-00000-of-00001.json")).unwrap(),
    )
    .unwrap();
    assert!(storage["requests"].as_u64().unwrap() > 10 && storage["retries"] == 0, "{storage}");
}

/// Input of `files` JSON Lines files of generated documents, uploaded to
/// `s3://bucket/in`.
fn upload_generated(server: &S3Server, dir: &Path, bucket: &str, files: usize) {
    let input = dir.join("generated");
    std::fs::create_dir_all(&input).unwrap();
    for (i, chunk) in generate_docs(files * 40, 5).chunks(40).enumerate() {
        write_jsonl(&input.join(format!("{i}.jsonl")), chunk);
    }
    server.client(&["mkbucket", bucket]);
    server.client(&["upload", input.to_str().unwrap(), bucket, "in"]);
}

const KEEP_LONG: &str =
    "[input]\npath = \"unused\"\n[output]\npath = \"unused\"\nformat = \"jsonl\"\nrejected = true\n\
    [[step]]\ntype = \"length\"\nmin_chars = 400\n";

/// A run killed midway on S3 (a shard under way, others published, some
/// markers in the store) and run again, on a fresh staging folder as on
/// another machine, ends with exactly the objects of a run never killed.
#[test]
fn a_killed_run_on_s3_resumes_to_the_objects_of_an_uninterrupted_one() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    upload_generated(&server, dir.path(), "bkt", 8);
    let pipeline = dir.path().join("keep-long.toml");
    std::fs::write(&pipeline, KEEP_LONG).unwrap();
    let run = |output: &str, staging: &str| {
        let mut cmd = curate_s3(&server.endpoint, &dir.path().join(staging));
        cmd.args(["run", pipeline.to_str().unwrap(), "--progress", "none", "--threads", "1"]);
        cmd.args(["--input", "s3://bkt/in", "--output", output]);
        cmd
    };
    ok(run("s3://bkt/whole", "staging-a").output().unwrap());
    // 8 units, each a batch of kept and one of rejected documents: pause
    // with the fifth unit's kept batch in its temporary file.
    kill_at_pause(run("s3://bkt/killed", "staging-b").env(hooks::PAUSE_AFTER_BATCHES, "9"), || {
        // The same task started again on this machine would wipe the
        // paused one's staging folder: it is refused.
        let second = run("s3://bkt/killed", "staging-b").output().unwrap();
        assert_eq!(second.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&second.stderr).contains("another curate process on this machine"));
    });
    let partial = server.download("bkt", "killed", &dir.path().join("partial"));
    let markers = std::fs::read_dir(dir.path().join("partial/.curate/units")).unwrap().count();
    assert!((1..8).contains(&markers), "some units are done, not all: {markers}");
    assert!(!partial.is_empty() && !dir.path().join("partial/stats.json").exists());
    ok(run("s3://bkt/killed", "staging-c").output().unwrap());
    let whole = server.download("bkt", "whole", &dir.path().join("whole"));
    let resumed = server.download("bkt", "killed", &dir.path().join("resumed"));
    assert_eq!(resumed.keys().collect::<Vec<_>>(), whole.keys().collect::<Vec<_>>());
    assert!(resumed == whole, "byte-identical shards");
    assert_eq!(stats(&dir.path().join("resumed"))["kept_docs"], stats(&dir.path().join("whole"))["kept_docs"]);
    // `curate stats` merges the tasks' stats where they are, in the store.
    let merged = curate_s3(&server.endpoint, &dir.path().join("staging-d")).args(["stats", "s3://bkt/killed"]).output();
    let said = ok(merged.unwrap());
    assert!(said.contains("stats in s3://bkt/killed/stats.json"), "{said}");
}

/// A proxy between curate and the server: it answers 503 Slow Down to
/// every other request until `slow_downs` are spent, and cuts the first
/// request whose body is over 1 MB (a part of a multipart upload) halfway
/// through its body.
struct FaultyProxy {
    port: u16,
    slow_downs: Arc<AtomicU64>,
    cuts: Arc<AtomicU64>,
}

impl FaultyProxy {
    fn start(upstream: &str, slow_downs: u64) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let left = Arc::new(AtomicU64::new(slow_downs));
        let cuts = Arc::new(AtomicU64::new(0));
        let (l, c) = (left.clone(), cuts.clone());
        std::thread::spawn(move || {
            let seen = AtomicU64::new(0);
            for client in listener.incoming().flatten() {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let fail =
                    n % 2 == 1 && l.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok();
                let (upstream, c) = (upstream.clone(), c.clone());
                std::thread::spawn(move || relay(client, &upstream, fail, &c));
            }
        });
        FaultyProxy { port, slow_downs: left, cuts }
    }
}

/// One request, answered by the upstream (or by a fault); then the
/// connection is closed, so that each request comes on a new one.
fn relay(mut client: TcpStream, upstream: &str, fail: bool, cuts: &AtomicU64) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    if fail {
        let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        let reply = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(reply.as_bytes());
        return;
    }
    if length > 1 << 20 && cuts.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        let mut half = vec![0; length / 2];
        let _ = reader.read_exact(&mut half);
        let _ = client.shutdown(std::net::Shutdown::Both);
        return;
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut server = TcpStream::connect(upstream).unwrap();
    server.write_all(&head).unwrap();
    server.write_all(&body).unwrap();
    let mut reply = Vec::new();
    let _ = server.read_to_end(&mut reply);
    let _ = client.write_all(&reply);
}

/// Throttling (503 Slow Down on every other request for a while) and a
/// connection cut in the middle of a multipart upload are retried: the
/// output is the output of a run without faults, every retry is counted,
/// and no upload is left half done.
#[test]
fn throttling_and_a_cut_upload_are_retried_and_lose_nothing() {
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    upload_generated(&server, dir.path(), "bkt", 4);
    // One document of 24 MB of varied text: its shard, over 16 MiB even
    // compressed, goes up as a multipart upload.
    let mut state = 7u64;
    let big: String = (0..24_000_000)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:'-!?()[]{}<>+*/=_@#$%&"
                [(state >> 33) as usize % 88] as char
        })
        .collect();
    let big_dir = dir.path().join("big");
    std::fs::create_dir(&big_dir).unwrap();
    write_jsonl(&big_dir.join("big.jsonl"), &[serde_json::json!({"id": "big", "text": big})]);
    server.client(&["upload", big_dir.to_str().unwrap(), "bkt", "in"]);
    let pipeline = dir.path().join("keep-long.toml");
    std::fs::write(&pipeline, KEEP_LONG.replace("[[step]]", "shard_bytes = \"1GB\"\n[[step]]")).unwrap();
    let run = |endpoint: &str, output: &str, staging: &str| {
        let mut cmd = curate_s3(endpoint, &dir.path().join(staging));
        cmd.args([
            "run",
            pipeline.to_str().unwrap(),
            "--progress",
            "none",
            "--input",
            "s3://bkt/in",
            "--output",
            output,
        ]);
        ok(cmd.output().unwrap())
    };
    run(&server.endpoint, "s3://bkt/calm", "staging-a");
    let proxy = FaultyProxy::start(&server.endpoint, 12);
    let said = run(&format!("http://127.0.0.1:{}", proxy.port), "s3://bkt/stormy", "staging-b");
    assert_eq!(proxy.slow_downs.load(Ordering::SeqCst), 0, "every 503 was sent");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "an upload was cut");
    let calm = server.download("bkt", "calm", &dir.path().join("calm"));
    let stormy = server.download("bkt", "stormy", &dir.path().join("stormy"));
    assert!(calm.values().any(|bytes| bytes.len() > 16 << 20), "a shard went up in parts");
    assert_eq!(stormy.keys().collect::<Vec<_>>(), calm.keys().collect::<Vec<_>>());
    assert!(stormy == calm, "byte-identical shards");
    assert_eq!(stats(&dir.path().join("stormy"))["kept_docs"], stats(&dir.path().join("calm"))["kept_docs"]);
    let storage: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("stormy/.curate/storage/rank-00000-of-00001.json")).unwrap(),
    )
    .unwrap();
    // Each 503 is (at least) one retry, and the cut upload one more.
    assert!(storage["retries"].as_u64().unwrap() >= 13, "{storage}; curate said: {said}");
}
