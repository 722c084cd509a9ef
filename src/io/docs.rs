//! Documents of an input, in input order, one unit after another, with bad
//! records counted rather than fatal: for commands that read documents but
//! write no shards (tokenizer training, the dedup stages, `curate bench`).

use std::sync::Arc;

use super::doc::Doc;
use super::plan::Plan;
use super::read::{self, ReadOptions, UnitReader};
use crate::runtime::tally::ErrorTally;

/// Batches of documents from a list of units, in order.
pub struct UnitBatches<'a> {
    plan: &'a Plan,
    units: Vec<usize>,
    next: usize,
    reader: Option<(usize, Box<dyn UnitReader>)>,
    options: Arc<ReadOptions>,
    /// Records that did not become documents, by kind.
    pub errors: ErrorTally,
}

impl<'a> UnitBatches<'a> {
    pub fn new(plan: &'a Plan, units: Vec<usize>, options: Arc<ReadOptions>) -> Self {
        UnitBatches { plan, units, next: 0, reader: None, options, errors: ErrorTally::default() }
    }

    /// Every unit of `plan`, in order.
    pub fn all(plan: &'a Plan, options: Arc<ReadOptions>) -> Self {
        UnitBatches::new(plan, (0..plan.units.len()).collect(), options)
    }

    /// Input bytes of the current unit read so far, for progress.
    pub fn bytes_read(&self) -> u64 {
        self.reader.as_ref().map_or(0, |(_, r)| r.bytes_read())
    }

    /// The next batch of documents (never empty), with the index of the unit
    /// it came from.
    pub fn next_batch(&mut self) -> Option<(usize, Vec<Doc>)> {
        loop {
            if self.reader.is_none() {
                let unit = *self.units.get(self.next)?;
                self.next += 1;
                let u = &self.plan.units[unit];
                self.reader = Some((unit, read::open(&self.plan.files[u.file], u, self.options.clone())));
            }
            let (unit, reader) = self.reader.as_mut().expect("opened above");
            let unit = *unit;
            let Some(records) = reader.next_batch() else {
                self.reader = None;
                continue;
            };
            let u = &self.plan.units[unit];
            let file = &self.plan.files[u.file];
            let mut docs = Vec::with_capacity(records.len());
            for record in records {
                match record {
                    Ok(doc) => docs.push(doc),
                    Err(e) => self.errors.add(e.error.kind.as_str(), e.count, || {
                        format!("{}: {}", read::describe(e.at, file, u), e.error.message)
                    }),
                }
            }
            if !docs.is_empty() {
                return Some((unit, docs));
            }
        }
    }
}
