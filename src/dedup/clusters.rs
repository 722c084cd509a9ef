//! The cluster stage: the edges of every band joined into clusters of
//! near-duplicates (connected components), and in each cluster every
//! document but the first in input order marked for removal.
//!
//! ```text
//! WORK/clusters/remove.dups   u32 unit, u32 doc, u32 kept unit, u32 kept doc, u32 cluster size; sorted
//! WORK/clusters/stats.json    clusters, documents in them, documents to remove, cluster sizes
//! ```
//!
//! One task, union-find over the documents that have an edge (documents
//! without one are in no cluster and cost nothing): about 40 bytes per such
//! document in the hash map, plus one band's edges at a time. Bounded
//! memory for corpora whose duplicates outgrow one machine (a sharded,
//! parallel union-find) is still to come.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::buckets::{self, edges_path};
use super::frame;
use super::signatures::StageParams;
use crate::io::atomic;

const MAGIC: &[u8; 8] = b"CURATECL";
const RECORD_BYTES: usize = 20;

/// A document to remove, its cluster's kept document and the cluster's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Removal {
    pub doc: (u32, u32),
    pub kept: (u32, u32),
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
        kind: "minhash duplicates to remove".into(),
        params: params.clone(),
        removals: removals as u64,
        record_bytes: RECORD_BYTES,
        sorted_by: "document".into(),
    }
}

pub fn removals_path(work: &Path) -> PathBuf {
    work.join("clusters").join("remove.dups")
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStats {
    pub clusters: u64,
    pub clustered_docs: u64,
    pub removed_docs: u64,
    /// Cluster size → clusters of that size.
    pub sizes: BTreeMap<u32, u64>,
}

/// Union-find over documents, the smaller (earlier) document always the root.
#[derive(Default)]
struct Forest {
    parent: HashMap<(u32, u32), (u32, u32)>,
}

impl Forest {
    fn root(&mut self, x: (u32, u32)) -> (u32, u32) {
        let mut r = x;
        while let Some(&p) = self.parent.get(&r) {
            if p == r {
                break;
            }
            r = p;
        }
        // Path compression: point everything on the way at the root.
        let mut y = x;
        while y != r {
            let next = self.parent[&y];
            self.parent.insert(y, r);
            y = next;
        }
        r
    }

    fn join(&mut self, a: (u32, u32), b: (u32, u32)) {
        self.parent.entry(a).or_insert(a);
        self.parent.entry(b).or_insert(b);
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.parent.insert(ra.max(rb), ra.min(rb));
        }
    }
}

/// The removals implied by `edges`: every clustered document but its cluster's first.
pub fn removals(edges: impl IntoIterator<Item = buckets::Edge>) -> (Vec<Removal>, ClusterStats) {
    let mut forest = Forest::default();
    for (a, b) in edges {
        forest.join(a, b);
    }
    let docs: Vec<(u32, u32)> = forest.parent.keys().copied().collect();
    let mut members: HashMap<(u32, u32), Vec<(u32, u32)>> = HashMap::new();
    for d in docs {
        let r = forest.root(d);
        members.entry(r).or_default().push(d);
    }
    let mut stats = ClusterStats::default();
    let mut out = Vec::new();
    for (root, docs) in members {
        let size = docs.len() as u32;
        stats.clusters += 1;
        stats.clustered_docs += u64::from(size);
        *stats.sizes.entry(size).or_default() += 1;
        out.extend(docs.into_iter().filter(|&d| d != root).map(|doc| Removal { doc, kept: root, cluster_size: size }));
    }
    out.sort_unstable();
    stats.removed_docs = out.len() as u64;
    (out, stats)
}

pub fn encode(params: &StageParams, removals: &[Removal]) -> Vec<u8> {
    let mut body = Vec::with_capacity(removals.len() * RECORD_BYTES);
    for r in removals {
        for v in [r.doc.0, r.doc.1, r.kept.0, r.kept.1, r.cluster_size] {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    frame::wrap(MAGIC, &header(params, removals.len()), &body)
}

/// Reads and verifies the removal list written with `params`.
pub fn read(path: &Path, params: &StageParams) -> Result<Vec<Removal>, String> {
    let fail = |message: String| format!("{}: {message}", path.display());
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let (found, body) =
        frame::unwrap::<Header>(&bytes, MAGIC, "duplicates", |h| h.removals as usize * h.record_bytes).map_err(fail)?;
    if found != header(params, found.removals as usize) {
        return Err(fail(format!("written with {:?}; this run needs {:?}", found.params, params)));
    }
    let at = |c: &[u8], i: usize| u32::from_le_bytes(c[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let removals: Vec<Removal> = body
        .chunks_exact(RECORD_BYTES)
        .map(|c| Removal { doc: (at(c, 0), at(c, 1)), kept: (at(c, 2), at(c, 3)), cluster_size: at(c, 4) })
        .collect();
    if removals.windows(2).any(|w| w[0].doc >= w[1].doc) {
        return Err(fail("documents out of order or repeated (the file must be sorted)".into()));
    }
    Ok(removals)
}

/// Joins every band's edges (each verified) and writes the removal list.
pub fn run(work: &Path) -> Result<ClusterStats, String> {
    let params = StageParams::load(work)?;
    let mut all = Vec::new();
    for band in 0..params.bands {
        let path = edges_path(work, band);
        if !path.is_file() {
            return Err(format!("{}: missing; finish `curate dedup buckets` first", path.display()));
        }
        all.extend(buckets::read(&path, &params, band)?);
    }
    all.sort_unstable();
    all.dedup();
    let (removals, stats) = removals(all);
    let path = removals_path(work);
    std::fs::create_dir_all(path.parent().expect("a folder")).map_err(|e| format!("{}: {e}", path.display()))?;
    atomic::write(&path, &encode(&params, &removals)).map_err(|e| format!("{}: {e}", path.display()))?;
    let stats_path = work.join("clusters").join("stats.json");
    atomic::write(&stats_path, &serde_json::to_vec_pretty(&stats).expect("serialisable"))
        .map_err(|e| format!("{}: {e}", stats_path.display()))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cluster_keeps_its_first_document() {
        let edges = vec![((0, 5), (0, 9)), ((0, 9), (1, 0)), ((2, 2), (0, 7)), ((3, 1), (3, 4)), ((0, 5), (1, 0))];
        let (removals, stats) = removals(edges);
        assert_eq!(
            removals,
            [
                Removal { doc: (0, 9), kept: (0, 5), cluster_size: 3 },
                Removal { doc: (1, 0), kept: (0, 5), cluster_size: 3 },
                Removal { doc: (2, 2), kept: (0, 7), cluster_size: 2 },
                Removal { doc: (3, 4), kept: (3, 1), cluster_size: 2 },
            ]
        );
        assert_eq!((stats.clusters, stats.clustered_docs, stats.removed_docs), (3, 7, 4));
        assert_eq!(stats.sizes, BTreeMap::from([(2, 2), (3, 1)]));
    }

    #[test]
    fn the_removal_list_round_trips_and_damage_is_named() {
        let params = StageParams { method: Default::default(), n_grams: 5, bands: 14, rows: 8, seed: 1, units: 3 };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remove.dups");
        let (list, _) = removals(vec![((0, 1), (0, 2)), ((0, 2), (2, 7))]);
        std::fs::write(&path, encode(&params, &list)).unwrap();
        assert_eq!(read(&path, &params).unwrap(), list);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path, &params).unwrap_err().contains("checksum mismatch"));
    }
}
