//! The filter stage, as a pipeline step: `type = "dedup"` drops the
//! documents the cluster stage listed, keeping one of each cluster (reason
//! `minhash_duplicate`, `simhash_duplicate`, or `exact_duplicate` for the
//! exact methods). A dropped document gets a `duplicate_of` field naming the
//! kept one's id, which the rejected output carries.
//!
//! ```toml
//! [[step]]
//! type = "dedup"
//! work = "dedup/"      # the folder of the signature, bucket and cluster stages
//! ```
//!
//! Documents are named by unit and place, so the run must read the very
//! input the signature stage read (same files, fields and unit split): the
//! step checks the run's input against the signatures' fingerprint before
//! any work. In annotate mode it reports each clustered document's cluster
//! (its kept document's number: its place in the input, counted over all
//! units, an index's documents first) and the cluster's size.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;

use super::clusters::{self, Layout, Removal};
use super::error::DedupError;
use super::minhash::Method;
use super::signatures::{self, StageParams};
use crate::io::doc::{Doc, FieldNames, Place};
use crate::io::plan::Plan;
use crate::step::{InputMismatch, Mode, Outcome, Step};

/// The field that names a dropped document's kept copy.
pub const DUPLICATE_OF: &str = "duplicate_of";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    pub work: PathBuf,
}

pub struct DedupStep {
    work: PathBuf,
    reason: &'static str,
    params: StageParams,
    /// Every clustered document, its cluster's kept one included.
    members: HashMap<Place, Removal>,
    /// Numbers documents for the `cluster` signal.
    layout: Layout,
    /// The kept documents' ids, as JSON string values.
    kept_ids: BTreeMap<Place, serde_json::Value>,
    metadata: [(String, bool); 1],
}

impl DedupConfig {
    /// Checks that the stages ran in `work`, without reading what they wrote.
    pub fn check(&self) -> Result<(), DedupError> {
        for (path, hint) in [
            (StageParams::path(&self.work), "run `curate dedup signatures` with this work folder first"),
            (clusters::removals_path(&self.work), "run `curate dedup clusters` first"),
        ] {
            if !path.is_file() {
                return Err(DedupError::NotReady { path, hint });
            }
        }
        Ok(())
    }
}

impl DedupStep {
    pub fn new(config: DedupConfig) -> Result<DedupStep, DedupError> {
        config.check()?;
        let params = StageParams::load(&config.work)?;
        let path = clusters::removals_path(&config.work);
        let mut members = HashMap::new();
        for r in clusters::read(&path, &params)? {
            members.insert(r.kept, Removal { doc: r.kept, ..r });
            members.insert(r.doc, r);
        }
        let kept_ids = clusters::read_kept_ids(&clusters::kept_ids_path(&config.work))?
            .into_iter()
            .map(|(doc, id)| (doc, serde_json::Value::String(id)))
            .collect();
        let reason = match params.method {
            Method::Minhash => "minhash_duplicate",
            Method::Simhash => "simhash_duplicate",
            Method::Exact | Method::ExactRaw => "exact_duplicate",
        };
        let metadata = [(DUPLICATE_OF.to_string(), false)];
        let layout = Layout::load(&config.work, &params)?;
        Ok(DedupStep { work: config.work, reason, params, members, layout, kept_ids, metadata })
    }

    fn decide(&self, doc: &mut Doc) -> Outcome {
        match self.members.get(&doc.place) {
            Some(r) if r.doc != r.kept => {
                if let Some(id) = self.kept_ids.get(&r.kept) {
                    doc.set_field(DUPLICATE_OF, id);
                }
                Outcome::Drop(self.reason.into())
            }
            _ => Outcome::Keep,
        }
    }
}

impl Step for DedupStep {
    fn judge(&self, doc: &mut Doc, mode: Mode<'_>) -> Outcome {
        if let Mode::Annotate(signals) = mode {
            match self.members.get(&doc.place) {
                Some(r) => signals.extend([self.layout.number(r.kept) as f64, f64::from(r.cluster_size)]),
                None => signals.extend([f64::NAN, f64::NAN]),
            }
        }
        self.decide(doc)
    }

    fn signal_names(&self) -> &'static [&'static str] {
        &["cluster", "cluster_size"]
    }

    fn metadata_fields(&self) -> &[(String, bool)] {
        &self.metadata
    }

    fn sums_signals(&self) -> bool {
        false
    }

    fn check_input(&self, plan: &Plan, names: &FieldNames) -> Result<(), InputMismatch> {
        let made = signatures::stage_dir(&self.work).fingerprint();
        if made.as_deref() != Some(signatures::fingerprint(&self.params, names, plan).as_str()) {
            return Err(InputMismatch(format!(
                "this run's input (its files and when they were written, text and id fields, or split_bytes) \
                 is not the input `curate dedup signatures` read into {}; dedup names documents by their place \
                 in it, so a file rewritten since (even shuffled at the same size) would drop the wrong ones",
                self.work.display()
            )));
        }
        Ok(())
    }
}
