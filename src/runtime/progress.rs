//! Progress of a task: a bar on a terminal, a log line every few seconds
//! otherwise (batch logs keep a record; a bar would fill them with escapes).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::options::Named;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    Auto,
    Bar,
    Log,
    None,
}

impl Named for ProgressMode {
    const ALL: &'static [Self] = &[ProgressMode::Auto, ProgressMode::Bar, ProgressMode::Log, ProgressMode::None];

    fn name(self) -> &'static str {
        match self {
            ProgressMode::Auto => "auto",
            ProgressMode::Bar => "bar",
            ProgressMode::Log => "log",
            ProgressMode::None => "none",
        }
    }
}

const LOG_EVERY: Duration = Duration::from_secs(15);

struct Counters {
    bytes: AtomicU64,
    docs: AtomicU64,
    total: u64,
    start: Instant,
    stop: AtomicBool,
}

impl Counters {
    fn line(&self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let (bytes, docs) = (self.bytes.load(Ordering::Relaxed), self.docs.load(Ordering::Relaxed));
        let mbs = bytes as f64 / secs / 1e6;
        let eta = if bytes > 0 && self.total > bytes {
            format!(", ETA {:.0}s", (self.total - bytes) as f64 * secs / bytes as f64)
        } else {
            String::new()
        };
        format!(
            "curate: {:.1}/{:.1} MB ({:.0}%), {docs} docs, {:.0} docs/s, {mbs:.1} MB/s{eta}",
            bytes as f64 / 1e6,
            self.total as f64 / 1e6,
            100.0 * bytes as f64 / self.total.max(1) as f64,
            docs as f64 / secs
        )
    }
}

pub struct Progress {
    counters: Arc<Counters>,
    bar: Option<ProgressBar>,
    logger: Option<JoinHandle<()>>,
}

impl Progress {
    pub fn start(total_bytes: u64, mode: ProgressMode) -> Progress {
        let counters = Arc::new(Counters {
            bytes: AtomicU64::new(0),
            docs: AtomicU64::new(0),
            total: total_bytes,
            start: Instant::now(),
            stop: AtomicBool::new(false),
        });
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Log,
            m => m,
        };
        let mut progress = Progress { counters: counters.clone(), bar: None, logger: None };
        match mode {
            ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                progress.bar = Some(bar);
            }
            ProgressMode::Log => {
                progress.logger = Some(std::thread::spawn(move || loop {
                    std::thread::park_timeout(LOG_EVERY);
                    if counters.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    eprintln!("{}", counters.line());
                }));
            }
            _ => {}
        }
        progress
    }

    pub fn add(&self, bytes: u64, docs: u64) {
        let c = &self.counters;
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        let docs = c.docs.fetch_add(docs, Ordering::Relaxed) + docs;
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            let secs = c.start.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{docs} docs {:.0} docs/s", docs as f64 / secs));
        }
    }

    pub fn finish(mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if let Some(logger) = self.logger.take() {
            self.counters.stop.store(true, Ordering::Relaxed);
            logger.thread().unpark();
            let _ = logger.join();
            eprintln!("{}", self.counters.line());
        }
    }
}

/// One unit's share of a [`Progress`]: input bytes reported as the unit is
/// read, and whatever was not reported when it ends.
pub struct UnitProgress<'a> {
    progress: &'a Progress,
    bytes: u64,
    reported: u64,
}

impl Progress {
    /// The share of a unit of `bytes` input bytes.
    pub fn unit(&self, bytes: u64) -> UnitProgress<'_> {
        UnitProgress { progress: self, bytes, reported: 0 }
    }
}

impl UnitProgress<'_> {
    /// `docs` more documents read.
    pub fn docs(&self, docs: u64) {
        self.progress.add(0, docs);
    }

    /// The unit has been read up to `bytes` of its input (clamped to its size).
    pub fn read_to(&mut self, bytes: u64) {
        let bytes = bytes.min(self.bytes);
        self.progress.add(bytes.saturating_sub(self.reported), 0);
        self.reported = self.reported.max(bytes);
    }

    /// The unit is done: the rest of its bytes count as read.
    pub fn finish(mut self) {
        let all = self.bytes;
        self.read_to(all);
    }
}
