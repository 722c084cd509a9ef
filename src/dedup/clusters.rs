//! The cluster stage: the edges of every band joined into clusters of
//! near-duplicates (connected components), and in each cluster one document
//! kept and the others marked for removal.
//!
//! ```text
//! WORK/clusters/remove.dups   u32 unit, u32 doc, u32 kept unit, u32 kept doc, u32 cluster size; sorted
//! WORK/clusters/kept.ids      the kept documents' ids: u32 unit, u32 doc, u32 length, id; sorted
//! WORK/clusters/stats.json    clusters, documents in them, documents to remove, cluster sizes
//! ```
//!
//! The kept document is the cluster's first in input order, or with a
//! priority field the one with the highest priority (ties: the first). With
//! an index (incremental dedup) the index's documents come first in input
//! order and are never removed: a cluster that holds one keeps it and loses
//! all of this input's members.
//!
//! Memory and parallelism: every document gets one number (the index's
//! units first, then this input's, from the unit markers) and one 8-byte
//! parent slot in a lock-free union-find; the edge files of the bands (or
//! of their parts) are joined in parallel, one file per thread at a time, so
//! no process holds every edge. The root of each component is its smallest
//! number whatever the order of the joins, so the result does not depend on
//! the thread count. After the joins, 16 bytes per clustered document, about
//! 40 per removal, and with a priority field 8 per document for the
//! priorities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::buckets::{self, edges_path, Part};
use super::docinfo;
use super::error::{read_file, DedupError, Fault};
use super::frame;
use super::signatures::{self, StageParams, INDEX_UNIT};
use crate::io::atomic;
use crate::io::doc::Place;

const MAGIC: &[u8; 8] = b"CURATECL";
const IDS_MAGIC: &[u8; 8] = b"CURATEKI";
const RECORD_BYTES: usize = 20;

/// A document to remove, its cluster's kept document and the cluster's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Removal {
    pub doc: Place,
    pub kept: Place,
    pub cluster_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    kind: String,
    params: StageParams,
    removals: u64,
    record_bytes: usize,
    sorted_by: String,
}

fn header(params: &StageParams, removals: usize) -> Header {
    Header {
        kind: "duplicates to remove".into(),
        params: params.clone(),
        removals: removals as u64,
        record_bytes: RECORD_BYTES,
        sorted_by: "document".into(),
    }
}

pub fn removals_path(work: &Path) -> PathBuf {
    work.join("clusters").join("remove.dups")
}

pub fn kept_ids_path(work: &Path) -> PathBuf {
    work.join("clusters").join("kept.ids")
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    pub documents: u64,
    pub clusters: u64,
    pub clustered_docs: u64,
    pub removed_docs: u64,
    /// Documents of this input removed because the index holds a copy.
    pub removed_for_index: u64,
    /// Cluster size → clusters of that size.
    pub sizes: BTreeMap<u32, u64>,
}

/// Every document's number: the index's units first, then this input's.
pub struct Layout {
    /// The first number of each unit, index units first, and the total last.
    starts: Vec<u64>,
    index_units: usize,
}

impl Layout {
    /// From the documents per unit, the index's first.
    pub fn new(index_counts: &[u64], counts: &[u64]) -> Layout {
        let mut starts = vec![0];
        for c in index_counts.iter().chain(counts) {
            starts.push(starts.last().expect("one") + c);
        }
        Layout { starts, index_units: index_counts.len() }
    }

    /// From the unit markers of the signature stage (and the index's).
    pub fn load(work: &Path, params: &StageParams) -> Result<Layout, DedupError> {
        let counts = |work: &Path, units: usize| -> Result<Vec<u64>, DedupError> {
            (0..units).map(|u| signatures::unit_stats(work, u).map(|s| s.input_docs - s.errors.docs)).collect()
        };
        let index = match &params.index {
            Some(index) => counts(&index.work, index.units)?,
            None => Vec::new(),
        };
        Ok(Layout::new(&index, &counts(work, params.units)?))
    }

    pub fn total(&self) -> u64 {
        *self.starts.last().expect("one")
    }

    fn slot(&self, unit: u32) -> usize {
        if unit >= INDEX_UNIT {
            (unit - INDEX_UNIT) as usize
        } else {
            self.index_units + unit as usize
        }
    }

    pub fn number(&self, place: Place) -> u64 {
        self.starts[self.slot(place.unit)] + u64::from(place.index)
    }

    pub fn place(&self, number: u64) -> Place {
        let slot = self.starts.partition_point(|&s| s <= number) - 1;
        let unit = if slot < self.index_units { INDEX_UNIT + slot as u32 } else { (slot - self.index_units) as u32 };
        Place { unit, index: (number - self.starts[slot]) as u32 }
    }

    pub fn in_index(&self, number: u64) -> bool {
        number < self.starts[self.index_units]
    }
}

/// Lock-free union-find in which a root is always its component's smallest
/// number: joins link the larger root under the smaller, and path halving
/// only moves a parent pointer down, so any order of joins ends alike.
pub struct Forest {
    parent: Vec<AtomicU64>,
}

impl Forest {
    pub fn new(n: u64) -> Forest {
        Forest { parent: (0..n).map(AtomicU64::new).collect() }
    }

    pub fn root(&self, mut x: u64) -> u64 {
        loop {
            let p = self.parent[x as usize].load(Ordering::Acquire);
            if p == x {
                return x;
            }
            let grandparent = self.parent[p as usize].load(Ordering::Acquire);
            if grandparent != p {
                // Losing this race is harmless: another thread moved the pointer down too.
                let _ = self.parent[x as usize].compare_exchange(p, grandparent, Ordering::AcqRel, Ordering::Acquire);
            }
            x = grandparent;
        }
    }

    pub fn join(&self, a: u64, b: u64) {
        loop {
            let (ra, rb) = (self.root(a), self.root(b));
            if ra == rb {
                return;
            }
            let (low, high) = (ra.min(rb), ra.max(rb));
            if self.parent[high as usize].compare_exchange(high, low, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return;
            }
        }
    }

    /// Every document that is not its component's root, with its root, sorted by root then document.
    pub fn members(&self) -> Vec<(u64, u64)> {
        let mut members: Vec<(u64, u64)> = (0..self.parent.len() as u64)
            .into_par_iter()
            .filter_map(|x| {
                let r = self.root(x);
                (r != x).then_some((r, x))
            })
            .collect();
        members.par_sort_unstable();
        members
    }
}

/// The removals that `forest`'s clusters imply: in each cluster all but the
/// index's first document if it holds one, else all but the one of highest
/// `priority` (ties, and no priorities: the first).
pub fn removals(forest: &Forest, layout: &Layout, priority: Option<&[f64]>) -> (Vec<Removal>, ClusterStats) {
    let members = forest.members();
    let mut stats = ClusterStats { documents: layout.total(), ..Default::default() };
    let mut out = Vec::new();
    let mut rest = members.as_slice();
    while let Some(&(root, _)) = rest.first() {
        let n = rest.iter().take_while(|(r, _)| *r == root).count();
        let cluster: Vec<u64> = std::iter::once(root).chain(rest[..n].iter().map(|&(_, x)| x)).collect();
        rest = &rest[n..];
        let size = cluster.len() as u32;
        stats.clusters += 1;
        stats.clustered_docs += u64::from(size);
        *stats.sizes.entry(size).or_default() += 1;
        let kept = if layout.in_index(root) {
            root
        } else if let Some(p) = priority {
            // The first of the highest: NaN (no priority) loses to any number.
            let mut best = root;
            for &x in &cluster[1..] {
                if p[x as usize] > p[best as usize] || (p[best as usize].is_nan() && !p[x as usize].is_nan()) {
                    best = x;
                }
            }
            best
        } else {
            root
        };
        for &x in &cluster {
            if x != kept && !layout.in_index(x) {
                out.push(Removal { doc: layout.place(x), kept: layout.place(kept), cluster_size: size });
                if layout.in_index(kept) {
                    stats.removed_for_index += 1;
                }
            }
        }
    }
    out.sort_unstable();
    stats.removed_docs = out.len() as u64;
    (out, stats)
}

pub fn encode(params: &StageParams, removals: &[Removal]) -> Vec<u8> {
    let mut body = Vec::with_capacity(removals.len() * RECORD_BYTES);
    for r in removals {
        for v in [r.doc.unit, r.doc.index, r.kept.unit, r.kept.index, r.cluster_size] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    frame::wrap(MAGIC, &header(params, removals.len()), &body)
}

/// Reads and verifies the removal list written with `params`.
pub fn read(path: &Path, params: &StageParams) -> Result<Vec<Removal>, DedupError> {
    read_file(path, |bytes| decode(bytes, params))
}

fn decode(bytes: &[u8], params: &StageParams) -> Result<Vec<Removal>, Fault> {
    let (found, body) = frame::unwrap::<Header>(bytes, MAGIC, "duplicates", |h| h.removals as usize * h.record_bytes)?;
    if found != header(params, found.removals as usize) {
        return Err(Fault::Mismatch(format!("with {:?}; this run needs {:?}", found.params, params)));
    }
    let at = |c: &[u8], i: usize| u32::from_le_bytes(c[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let removals: Vec<Removal> = body
        .chunks_exact(RECORD_BYTES)
        .map(|c| Removal {
            doc: Place { unit: at(c, 0), index: at(c, 1) },
            kept: Place { unit: at(c, 2), index: at(c, 3) },
            cluster_size: at(c, 4),
        })
        .collect();
    if removals.windows(2).any(|w| w[0].doc >= w[1].doc) {
        return Err(Fault::Disorder("documents out of order or repeated".into()));
    }
    Ok(removals)
}

/// The ids of kept documents, by place.
pub type KeptIds = BTreeMap<Place, String>;

/// Ids of kept documents, by place.
pub fn encode_kept_ids(ids: &KeptIds) -> Vec<u8> {
    let mut body = Vec::new();
    for (place, id) in ids {
        for v in [place.unit, place.index, id.len() as u32] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(id.as_bytes());
    }
    let header = serde_json::json!({ "kind": "kept document ids", "entries": ids.len(), "body_bytes": body.len() });
    frame::wrap(IDS_MAGIC, &header, &body)
}

/// Reads and verifies `clusters/kept.ids`.
pub fn read_kept_ids(path: &Path) -> Result<KeptIds, DedupError> {
    read_file(path, decode_kept_ids)
}

fn decode_kept_ids(bytes: &[u8]) -> Result<KeptIds, Fault> {
    let (_, mut body) = frame::unwrap::<serde_json::Value>(bytes, IDS_MAGIC, "kept ids", |h| {
        h["body_bytes"].as_u64().unwrap_or(0) as usize
    })?;
    let mut ids = BTreeMap::new();
    while !body.is_empty() {
        let broken = || Fault::Malformed("a record breaks off".into());
        let (head, rest) = body.split_at_checked(12).ok_or_else(broken)?;
        let at = |i: usize| u32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
        let (id, rest) = rest.split_at_checked(at(2) as usize).ok_or_else(broken)?;
        let id = String::from_utf8(id.to_vec()).map_err(|_| Fault::Malformed("an id is not UTF-8".into()))?;
        ids.insert(Place { unit: at(0), index: at(1) }, id);
        body = rest;
    }
    Ok(ids)
}

/// Every document's priority, in [`Layout`] order, from the signature stage's document files.
fn priorities(work: &Path, params: &StageParams) -> Result<Vec<f64>, DedupError> {
    let mut units: Vec<(PathBuf, usize)> = Vec::new();
    if let Some(index) = &params.index {
        units.extend((0..index.units).map(|u| (index.work.clone(), u)));
    }
    units.extend((0..params.units).map(|u| (work.to_path_buf(), u)));
    let per_unit: Vec<Result<Vec<f64>, DedupError>> = units
        .par_iter()
        .map(|(work, u)| {
            docinfo::read(&docinfo::path(work, *u), *u as u32).map(|docs| docs.iter().map(|d| d.priority).collect())
        })
        .collect();
    let mut all = Vec::new();
    for unit in per_unit {
        all.extend(unit?);
    }
    Ok(all)
}

/// The ids of the documents kept in place of removed ones.
fn kept_ids(work: &Path, params: &StageParams, removals: &[Removal]) -> Result<KeptIds, DedupError> {
    let mut wanted: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for r in removals {
        wanted.entry(r.kept.unit).or_default().push(r.kept.index);
    }
    let mut ids = BTreeMap::new();
    for (unit, docs) in wanted {
        let (folder, local) = match (&params.index, unit >= INDEX_UNIT) {
            (Some(index), true) => (index.work.as_path(), unit - INDEX_UNIT),
            _ => (work, unit),
        };
        let path = docinfo::path(folder, local as usize);
        let infos = docinfo::read(&path, local)?;
        for index in docs {
            let info = infos
                .get(index as usize)
                .ok_or_else(|| DedupError::damaged(&path)(Fault::Malformed(format!("no document {index}"))))?;
            ids.insert(Place { unit, index }, info.id.clone());
        }
    }
    Ok(ids)
}

/// Joins every band's edges (each verified) and writes the removal list and the kept ids.
pub fn run(work: &Path) -> Result<ClusterStats, DedupError> {
    let params = StageParams::load(work)?;
    let parts: Vec<Part> = Part::all(params.bands, buckets::ranges(work)?).collect();
    for &part in &parts {
        let path = edges_path(work, part);
        if !path.is_file() {
            return Err(DedupError::NotReady { path, hint: "finish `curate dedup buckets` first" });
        }
    }
    atomic::create_dir(&work.join("clusters"))?;
    for stale in [removals_path(work), kept_ids_path(work)] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(atomic::WriteError { path: stale, source: e }.into())
            }
            _ => {}
        }
    }
    let layout = Layout::load(work, &params)?;
    let forest = Forest::new(layout.total());
    parts.par_iter().try_for_each(|&part| -> Result<(), DedupError> {
        for (a, b) in buckets::read(&edges_path(work, part), &params, part)? {
            forest.join(layout.number(a), layout.number(b));
        }
        Ok(())
    })?;
    let priority = match params.priority {
        Some(_) => Some(priorities(work, &params)?),
        None => None,
    };
    let (removals, stats) = removals(&forest, &layout, priority.as_deref());
    drop(forest);
    let ids = kept_ids(work, &params, &removals)?;
    // The kept ids first and the removal list last, each over any earlier
    // run's (deleted up front): a removal list always has its ids beside it.
    atomic::write(&kept_ids_path(work), &encode_kept_ids(&ids))?;
    atomic::write(&removals_path(work), &encode(&params, &removals))?;
    atomic::write(
        &work.join("clusters").join("stats.json"),
        &serde_json::to_vec_pretty(&stats).expect("serialisable"),
    )?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::minhash::MinHashConfig;

    const COUNTS: [u64; 4] = [10, 1, 3, 5];

    const fn p(unit: u32, index: u32) -> Place {
        Place { unit, index }
    }

    fn clusters_of(edges: &[buckets::Edge], index: &[u64], priority: Option<&[f64]>) -> (Vec<Removal>, ClusterStats) {
        let layout = Layout::new(index, &COUNTS);
        let forest = Forest::new(layout.total());
        for &(a, b) in edges {
            forest.join(layout.number(a), layout.number(b));
        }
        removals(&forest, &layout, priority)
    }

    const EDGES: [buckets::Edge; 5] =
        [(p(0, 5), p(0, 9)), (p(0, 9), p(1, 0)), (p(0, 7), p(2, 2)), (p(3, 1), p(3, 4)), (p(0, 5), p(1, 0))];

    #[test]
    fn each_cluster_keeps_its_first_document() {
        let (removals, stats) = clusters_of(&EDGES, &[], None);
        assert_eq!(
            removals,
            [
                Removal { doc: p(0, 9), kept: p(0, 5), cluster_size: 3 },
                Removal { doc: p(1, 0), kept: p(0, 5), cluster_size: 3 },
                Removal { doc: p(2, 2), kept: p(0, 7), cluster_size: 2 },
                Removal { doc: p(3, 4), kept: p(3, 1), cluster_size: 2 },
            ]
        );
        assert_eq!((stats.documents, stats.clusters, stats.clustered_docs, stats.removed_docs), (19, 3, 7, 4));
        assert_eq!(stats.sizes, BTreeMap::from([(2, 2), (3, 1)]));
    }

    #[test]
    fn a_priority_keeps_the_highest_and_ties_keep_the_first() {
        let mut priority = vec![f64::NAN; 19];
        let layout = Layout::new(&[], &COUNTS);
        priority[layout.number(p(0, 9)) as usize] = 5.0;
        priority[layout.number(p(1, 0)) as usize] = 5.0;
        priority[layout.number(p(0, 5)) as usize] = 1.0;
        // (0, 7) and (2, 2) have none: the first stays.
        priority[layout.number(p(3, 4)) as usize] = -3.0;
        let (removals, _) = clusters_of(&EDGES, &[], Some(&priority));
        assert_eq!(
            removals,
            [
                Removal { doc: p(0, 5), kept: p(0, 9), cluster_size: 3 },
                Removal { doc: p(1, 0), kept: p(0, 9), cluster_size: 3 },
                Removal { doc: p(2, 2), kept: p(0, 7), cluster_size: 2 },
                Removal { doc: p(3, 1), kept: p(3, 4), cluster_size: 2 },
            ]
        );
    }

    #[test]
    fn an_index_copy_removes_every_new_member_and_the_index_loses_nothing() {
        let i = |u: u32, d: u32| p(INDEX_UNIT + u, d);
        let mut edges = EDGES.to_vec();
        edges.extend([(p(0, 9), i(1, 2)), (i(0, 0), i(1, 1))]);
        let (removals, stats) = clusters_of(&edges, &[4, 3], None);
        assert_eq!(
            removals,
            [
                Removal { doc: p(0, 5), kept: i(1, 2), cluster_size: 4 },
                Removal { doc: p(0, 9), kept: i(1, 2), cluster_size: 4 },
                Removal { doc: p(1, 0), kept: i(1, 2), cluster_size: 4 },
                Removal { doc: p(2, 2), kept: p(0, 7), cluster_size: 2 },
                Removal { doc: p(3, 4), kept: p(3, 1), cluster_size: 2 },
            ]
        );
        assert_eq!((stats.documents, stats.removed_for_index, stats.clusters), (26, 3, 4));
    }

    #[test]
    fn joins_in_any_order_on_many_threads_give_the_same_clusters() {
        // A random graph over 20,000 documents, joined in order on one thread and shuffled on many.
        let n = 20_000u64;
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let edges: Vec<(u64, u64)> = (0..15_000).map(|_| (next() % n, next() % n)).collect();
        let sequential = Forest::new(n);
        for &(a, b) in &edges {
            sequential.join(a, b);
        }
        let mut shuffled = edges.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, (next() % (i as u64 + 1)) as usize);
        }
        let parallel = Forest::new(n);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| shuffled.par_iter().with_max_len(16).for_each(|&(a, b)| parallel.join(a, b)));
        let members = sequential.members();
        assert!(members.len() > 5_000, "{}", members.len());
        assert_eq!(members, parallel.members());
        assert!(members.iter().all(|&(root, x)| root < x));
    }

    #[test]
    fn numbers_and_documents_correspond() {
        let layout = Layout::new(&[2, 0, 3], &COUNTS);
        for number in 0..layout.total() {
            assert_eq!(layout.number(layout.place(number)), number);
        }
        assert_eq!(layout.place(0), p(INDEX_UNIT, 0));
        assert_eq!(layout.place(4), p(INDEX_UNIT + 2, 2));
        assert_eq!(layout.place(5), p(0, 0));
        assert!(layout.in_index(4) && !layout.in_index(5));
    }

    #[test]
    fn the_removal_list_and_kept_ids_round_trip_and_damage_is_named() {
        let params = StageParams::new(&MinHashConfig::default(), 4);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remove.dups");
        let (list, _) = clusters_of(&EDGES, &[], None);
        std::fs::write(&path, encode(&params, &list)).unwrap();
        assert_eq!(read(&path, &params).unwrap(), list);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path, &params).unwrap_err().to_string().contains("checksum mismatch"));

        let ids = BTreeMap::from([(p(0, 5), "doc-5".to_string()), (p(INDEX_UNIT + 1, 2), "old/ü".to_string())]);
        let ids_path = dir.path().join("kept.ids");
        std::fs::write(&ids_path, encode_kept_ids(&ids)).unwrap();
        assert_eq!(read_kept_ids(&ids_path).unwrap(), ids);
        let bytes = std::fs::read(&ids_path).unwrap();
        std::fs::write(&ids_path, &bytes[..bytes.len() - 2]).unwrap();
        assert!(read_kept_ids(&ids_path).unwrap_err().to_string().contains("kept.ids"));
    }
}
