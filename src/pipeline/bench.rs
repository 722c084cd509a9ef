//! `curate bench`: throughput of each filter alone and of the whole
//! pipeline, on one core and on all cores, over documents held in memory
//! (reading and writing excluded: this measures the steps).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::config::StepSpec;
use super::registry::{self, StepError};
use crate::io::doc::{Doc, FieldNames};
use crate::io::docs::UnitBatches;
use crate::io::plan::Plan;
use crate::io::read::ReadOptions;
use crate::runtime::pool::{self, PoolError};
use crate::step::{Mode, Outcome, Step};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("step {name}: {source}")]
    Step { name: String, source: Box<StepError> },
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// The filters `curate bench` measures when no pipeline is given: those
/// whose defaults make sense on any text.
pub const DEFAULT_STEPS: &[&str] = &["gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"];

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub step: String,
    pub threads: usize,
    pub docs: usize,
    pub megabytes: f64,
    pub seconds: f64,
    pub docs_per_second: f64,
    pub megabytes_per_second: f64,
    /// Share of documents the step keeps.
    pub kept: f64,
}

/// Reads up to `max_docs` documents and `max_bytes` of text.
pub fn load(plan: &Plan, names: FieldNames, max_docs: usize, max_bytes: usize) -> Vec<Doc> {
    let read = Arc::new(ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
    let mut batches = UnitBatches::all(plan, read);
    let (mut docs, mut bytes) = (Vec::new(), 0);
    while let Some((_, batch)) = batches.next_batch() {
        for doc in batch {
            if docs.len() >= max_docs || bytes >= max_bytes {
                return docs;
            }
            bytes += doc.text.len();
            docs.push(doc);
        }
    }
    docs
}

fn measure(name: &str, steps: &[Box<dyn Step>], docs: &[Doc], pool: &rayon::ThreadPool) -> BenchRow {
    // Steps may rewrite text, so each run gets its own copy, made untimed.
    let mut copy: Vec<Doc> = docs.to_vec();
    let megabytes = docs.iter().map(|d| d.text.len()).sum::<usize>() as f64 / 1e6;
    let run = |doc: &mut Doc| -> bool {
        steps.iter().all(|s| !matches!(s.judge(doc, Mode::Filter), Outcome::Drop(Cow::Borrowed(_) | Cow::Owned(_))))
    };
    let start = Instant::now();
    let kept = pool.install(|| copy.par_iter_mut().map(|d| run(d) as usize).sum::<usize>());
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    BenchRow {
        step: name.to_owned(),
        threads: pool.current_num_threads(),
        docs: docs.len(),
        megabytes,
        seconds,
        docs_per_second: docs.len() as f64 / seconds,
        megabytes_per_second: megabytes / seconds,
        kept: kept as f64 / docs.len().max(1) as f64,
    }
}

/// Each step alone, then all of them in order (as a pipeline runs them: a
/// document dropped by one step is not seen by the next), on one thread and
/// on `threads`.
pub fn bench(specs: &[StepSpec], docs: &[Doc], threads: usize) -> Result<Vec<BenchRow>, BenchError> {
    let steps: Vec<Box<dyn Step>> = specs
        .iter()
        .map(|s| {
            registry::build(&s.kind, &s.options)
                .map_err(|source| BenchError::Step { name: s.name.clone(), source: Box::new(source) })
        })
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut thread_counts = vec![1];
    if threads > 1 {
        thread_counts.push(threads);
    }
    for &n in &thread_counts {
        let pool = pool::pool(n)?;
        for (spec, step) in specs.iter().zip(&steps) {
            rows.push(measure(&spec.name, std::slice::from_ref(step), docs, &pool));
        }
        if steps.len() > 1 {
            rows.push(measure("(pipeline)", &steps, docs, &pool));
        }
    }
    Ok(rows)
}

pub fn table(rows: &[BenchRow]) -> String {
    let mut out = String::from("| step | threads | docs/s | MB/s | kept |\n|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.1}% |\n",
            r.step,
            r.threads,
            r.docs_per_second,
            r.megabytes_per_second,
            r.kept * 100.0
        ));
    }
    out
}
