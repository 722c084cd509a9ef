//! Finding the input files and cutting them into numbered units of work.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::Serialize;

use super::format::{Compression, InputFormat};
use super::source::{Remote, Source};

#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    #[serde(skip)]
    pub path: PathBuf,
    /// The path relative to the input root: stable across machines, used in
    /// made-up ids and in error locations.
    pub name: String,
    pub format: InputFormat,
    pub compression: Compression,
    pub size: u64,
    /// When the file was last written (seconds and nanoseconds since the
    /// epoch), so that a fingerprint of the plan changes when a file is
    /// rewritten, even at the same size (a shuffle, an edit): work done on
    /// the old content is then refused, never mixed with the new. `None`
    /// where the file system does not say.
    pub modified: Option<(u64, u32)>,
    /// Set for a folder under the input that could not be listed: it stands
    /// in the plan as one unreadable input, so that the documents it may
    /// hold are counted as an error under its name instead of ending the
    /// run (an unreadable file is counted the same way).
    #[serde(skip)]
    pub unlisted: Option<String>,
    /// Set for an object in an object store (`path` is then its address,
    /// `s3://bucket/key`).
    #[serde(skip)]
    pub remote: Option<Remote>,
}

impl InputFile {
    /// The file's bytes, from the disk or the object store.
    pub fn open(&self) -> io::Result<Source> {
        Source::open(&self.path, self.remote.as_ref(), self.size)
    }
}

/// Which part of its file a unit reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Span {
    /// The whole file (compressed files, which cannot be entered midway).
    Whole,
    /// The lines of a plain JSON Lines file that start in `[start, end)`.
    Bytes { start: u64, end: u64 },
    /// One Parquet row group, whose first row is `first_row` of the file.
    RowGroup { index: usize, first_row: u64, rows: u64 },
}

#[derive(Debug, Clone, Serialize)]
pub struct Unit {
    pub index: usize,
    pub file: usize,
    pub span: Span,
    /// Input bytes this unit stands for (file bytes, compressed size of a
    /// row group): what progress and `input_bytes` count.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub files: Vec<InputFile>,
    pub units: Vec<Unit>,
    /// What was found under the input but is not read, and why.
    #[serde(skip)]
    pub ignored: Vec<Ignored>,
}

/// A file or folder found under the input that is not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub path: PathBuf,
    pub why: WhyIgnored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyIgnored {
    /// A file whose extension is not an input format.
    NotAnInputFormat,
    /// The same file or folder (a link, a hard link, a link back up the
    /// tree) as this path, read already: read twice, its documents would
    /// count twice, and a link loop would repeat them without end.
    SameAs(PathBuf),
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.why {
            WhyIgnored::NotAnInputFormat => write!(f, "ignored {} (not an input format)", self.path.display()),
            WhyIgnored::SameAs(first) => {
                write!(f, "ignored {}: the same as {}, read already (a link)", self.path.display(), first.display())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("input {0} does not exist")]
    Missing(String),
    #[error("no input files found at {0} (looked for .jsonl, .json, .ndjson, optionally .gz or .zst, and .parquet)")]
    Empty(String),
    #[error("bad glob {pattern}: {message}")]
    Glob { pattern: String, message: String },
    #[error("cannot list {path}: {source}")]
    List { path: String, source: std::io::Error },
    #[error("{0}: unknown input format; name it .jsonl[.gz|.zst] or .parquet, or set input.format")]
    UnknownFormat(String),
    #[error(transparent)]
    OutputInInput(Box<OutputInInput>),
    #[error(transparent)]
    Store(#[from] Box<curate_store::StoreError>),
}

/// An output folder inside the input, as given and with links resolved
/// (boxed in [`PlanError`]: four paths would make every error that holds
/// one large).
#[derive(Debug, thiserror::Error)]
#[error(
    "the output folder {} is inside the input folder {} (resolved: {} in {}); the next run would read its own output",
    output.display(), input, resolved_output.display(), resolved_input.display()
)]
pub struct OutputInInput {
    pub output: PathBuf,
    pub input: String,
    pub resolved_output: PathBuf,
    pub resolved_input: PathBuf,
}

/// `path` made absolute with links resolved as far as it exists, and the
/// rest (not there yet) appended with `.` and `..` resolved by name.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            // `out` has no link left in it, so its parent is the real one.
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => {
                out.push(other);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

/// Refuses an output folder that the planner would find under `input` (a
/// folder, or a glob's folder) and read back as input on the next run:
/// paths compared once resolved (links followed, `..` taken), so a link to
/// the input or a glob does not hide it. Inside an earlier run's output
/// folder only `part-*` entries are read, so a folder of another name there
/// (the default `tokens/`) is fine.
pub fn refuse_output_in_input(input: &str, output: &Path) -> Result<(), PlanError> {
    let root: PathBuf = Path::new(input)
        .components()
        .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
        .collect();
    let resolved_input = resolved(&root);
    if !resolved_input.is_dir() {
        return Ok(());
    }
    let resolved_output = resolved(output);
    let Ok(inside) = resolved_output.strip_prefix(&resolved_input) else { return Ok(()) };
    let first = inside.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    let skipped = resolved_input.join(".curate").is_dir() && first.is_some_and(|f| !f.starts_with("part-"));
    if skipped {
        return Ok(());
    }
    Err(PlanError::OutputInInput(Box::new(OutputInInput {
        output: output.to_owned(),
        input: input.to_owned(),
        resolved_output,
        resolved_input,
    })))
}

/// Lists the input at `input` (a file, a folder walked recursively, or a
/// glob) in sorted order and cuts it into units.
pub fn plan(input: &str, format: Option<InputFormat>, split_bytes: u64) -> Result<Plan, PlanError> {
    let (files, ignored) =
        if curate_store::is_remote(input) { remote_files(input, format)? } else { local_files(input, format)? };
    if files.is_empty() {
        return Err(PlanError::Empty(input.to_owned()));
    }
    let mut units = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let mut push = |span, bytes| units.push(Unit { index: units.len(), file: i, span, bytes });
        match (file.format, file.compression) {
            (InputFormat::Jsonl, Compression::None) if file.size > split_bytes => {
                let mut start = 0;
                while start < file.size {
                    let end = (start + split_bytes).min(file.size);
                    push(Span::Bytes { start, end }, end - start);
                    start = end;
                }
            }
            (InputFormat::Parquet, _) => match row_groups(file) {
                Some(groups) if !groups.is_empty() => {
                    let mut first_row = 0;
                    for (index, (rows, bytes)) in groups.into_iter().enumerate() {
                        push(Span::RowGroup { index, first_row, rows }, bytes);
                        first_row += rows;
                    }
                }
                _ => push(Span::Whole, file.size),
            },
            _ => push(Span::Whole, file.size),
        }
    }
    Ok(Plan { files, units, ignored })
}

/// The input files on the local disk, and what was passed over.
fn local_files(input: &str, format: Option<InputFormat>) -> Result<(Vec<InputFile>, Vec<Ignored>), PlanError> {
    let Found { root, files: candidates, explicit, mut ignored, unlisted } = find(input)?;
    let mut files = Vec::new();
    for path in candidates {
        let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned();
        let name =
            if name.is_empty() { path.file_name().unwrap_or_default().to_string_lossy().into_owned() } else { name };
        let Some((format, compression)) = format_of(&path, format, explicit, &mut ignored)? else { continue };
        // A file we cannot stat still becomes a unit: reading it fails, and
        // that failure is counted where the user looks, in the stats.
        let meta = fs::metadata(&path).ok();
        let size = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| (d.as_secs(), d.subsec_nanos()));
        files.push(InputFile { path, name, format, compression, size, modified, unlisted: None, remote: None });
    }
    for (path, why) in unlisted {
        let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().into_owned();
        let (format, compression, size, modified) = (InputFormat::Jsonl, Compression::None, 0, None);
        files.push(InputFile { path, name, format, compression, size, modified, unlisted: Some(why), remote: None });
    }
    Ok((files, ignored))
}

/// The input files under an object store address (`s3://bucket/prefix`, a
/// single object, or a glob over keys), with the same rules as on disk:
/// hidden names are skipped, and in an earlier run's output only its
/// `part-*` shards are read.
fn remote_files(input: &str, format: Option<InputFormat>) -> Result<(Vec<InputFile>, Vec<Ignored>), PlanError> {
    let (bucket, prefix) = curate_store::Bucket::open(input).map_err(Box::new)?;
    let globbed = prefix.contains(['*', '?', '[']);
    let root = match globbed {
        true => prefix[..prefix[..prefix.find(['*', '?', '[']).unwrap_or(0)].rfind('/').unwrap_or(0)].to_owned(),
        false => prefix.clone(),
    };
    let objects = bucket.list(&root).map_err(Box::new)?;
    let single = !globbed && objects.iter().any(|o| o.key == prefix);
    if objects.is_empty() {
        return Err(PlanError::Missing(input.to_owned()));
    }
    let pattern = match globbed {
        true => Some(
            glob::Pattern::new(&prefix)
                .map_err(|e| PlanError::Glob { pattern: input.into(), message: e.to_string() })?,
        ),
        false => None,
    };
    let matching = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
    let outputs = run_outputs(objects.iter().map(|o| o.key.as_str()));
    let explicit = single || globbed;
    let (mut files, mut ignored) = (Vec::new(), Vec::new());
    for object in &objects {
        let key = object.key.as_str();
        let name = match single {
            true => key.rsplit('/').next().unwrap_or(key),
            false => key.strip_prefix(root.as_str()).unwrap_or(key).trim_start_matches('/'),
        };
        if single && key != prefix {
            continue;
        }
        if let Some(pattern) = &pattern {
            if !pattern.matches_with(key, matching) {
                continue;
            }
        }
        if !single && skipped_in_listing(key, &root, &outputs) {
            continue;
        }
        let path = PathBuf::from(bucket.url(key));
        let Some((format, compression)) = format_of(&path, format, explicit, &mut ignored)? else { continue };
        files.push(InputFile {
            path,
            name: name.to_owned(),
            format,
            compression,
            size: object.size,
            modified: Some(object.modified),
            unlisted: None,
            remote: Some(Remote { bucket: bucket.clone(), key: key.to_owned() }),
        });
    }
    Ok((files, ignored))
}

/// The folders (key prefixes, `""` for the bucket's top) that hold an
/// earlier run's output: a `.curate/` in them.
fn run_outputs<'a>(keys: impl Iterator<Item = &'a str>) -> std::collections::HashSet<&'a str> {
    keys.filter_map(|key| match key.starts_with(".curate/") {
        true => Some(""),
        false => key.split_once("/.curate/").map(|(dir, _)| dir),
    })
    .collect()
}

/// Whether a listed key is passed over as a folder walk would pass it: a
/// hidden name on the way down from `root`, or anything but `part-*` in a
/// folder that is an earlier run's output.
fn skipped_in_listing(key: &str, root: &str, outputs: &std::collections::HashSet<&str>) -> bool {
    let rest = key.strip_prefix(root).unwrap_or(key).trim_start_matches('/');
    let mut dir = root.to_owned();
    for part in rest.split('/') {
        if part.starts_with('.') || (outputs.contains(dir.as_str()) && !part.starts_with("part-")) {
            return true;
        }
        dir = if dir.is_empty() { part.to_owned() } else { format!("{dir}/{part}") };
    }
    false
}

/// The format (`format` if the user set one, else the extension's) and
/// compression of the file at `path`; `None`, with the file added to
/// `ignored`, where the extension names no input format, or an error where
/// the user named the file itself (`explicit`).
fn format_of(
    path: &Path,
    format: Option<InputFormat>,
    explicit: bool,
    ignored: &mut Vec<Ignored>,
) -> Result<Option<(InputFormat, Compression)>, PlanError> {
    let (detected, compression) = detect(path);
    match format.or(detected) {
        Some(format) => Ok(Some((format, compression))),
        None if explicit => Err(PlanError::UnknownFormat(path.display().to_string())),
        None => {
            ignored.push(Ignored { path: path.to_owned(), why: WhyIgnored::NotAnInputFormat });
            Ok(None)
        }
    }
}

/// Rows and compressed bytes of each row group; `None` when the footer does
/// not read (the reader then reports why, as a counted error).
fn row_groups(file: &InputFile) -> Option<Vec<(u64, u64)>> {
    let reader = SerializedFileReader::new(file.open().ok()?).ok()?;
    let meta = reader.metadata();
    Some(meta.row_groups().iter().map(|rg| (rg.num_rows().max(0) as u64, rg.compressed_size().max(0) as u64)).collect())
}

/// The format and compression an extension names.
fn detect(path: &Path) -> (Option<InputFormat>, Compression) {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst").or_else(|| name.strip_suffix(".zstd")) {
        (s, Compression::Zstd)
    } else {
        (name.as_str(), Compression::None)
    };
    let format = if stem.ends_with(".jsonl") || stem.ends_with(".json") || stem.ends_with(".ndjson") {
        Some(InputFormat::Jsonl)
    } else if stem.ends_with(".parquet") && compression == Compression::None {
        Some(InputFormat::Parquet)
    } else if stem.ends_with(".warc") || stem.ends_with(".wet") || stem.ends_with(".arc.wet") {
        Some(InputFormat::Warc)
    } else {
        None
    };
    (format, compression)
}

/// The files and folders read so far, by device and inode, with the path
/// each was first reached by.
type Seen = HashMap<(u64, u64), PathBuf>;

/// Whether `path` (whose metadata, links followed, is `meta`) was reached
/// before; if so it is ignored as the same as the first path.
fn reached_before(path: &Path, meta: &fs::Metadata, seen: &mut Seen, ignored: &mut Vec<Ignored>) -> bool {
    match seen.get(&(meta.dev(), meta.ino())) {
        Some(first) => {
            ignored.push(Ignored { path: path.to_owned(), why: WhyIgnored::SameAs(first.clone()) });
            true
        }
        None => {
            seen.insert((meta.dev(), meta.ino()), path.to_owned());
            false
        }
    }
}

/// What [`find`] found under an input path.
struct Found {
    /// The root that names are relative to.
    root: PathBuf,
    /// The candidate files, sorted.
    files: Vec<PathBuf>,
    /// Whether the user named the files one by one: then an unknown format
    /// is an error rather than a file to skip.
    explicit: bool,
    /// What was passed over, and why.
    ignored: Vec<Ignored>,
    /// Folders under the root that could not be listed, and why.
    unlisted: Vec<(PathBuf, String)>,
}

fn find(input: &str) -> Result<Found, PlanError> {
    let mut seen = Seen::new();
    let mut ignored = Vec::new();
    let mut unlisted = Vec::new();
    if input.contains(['*', '?', '[']) {
        let root: PathBuf = Path::new(input)
            .components()
            .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
            .collect();
        let paths = glob::glob(input).map_err(|e| PlanError::Glob { pattern: input.into(), message: e.to_string() })?;
        let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() && !reached_before(&path, &meta, &mut seen, &mut ignored) => {
                    files.push(path)
                }
                _ => {}
            }
        }
        return Ok(Found { root, files, explicit: true, ignored, unlisted });
    }
    let path = PathBuf::from(input);
    let meta = fs::metadata(&path).map_err(|_| PlanError::Missing(input.to_owned()))?;
    if meta.is_dir() {
        seen.insert((meta.dev(), meta.ino()), path.clone());
        let mut files = Vec::new();
        let entries = list(&path).map_err(|source| PlanError::List { path: path.display().to_string(), source })?;
        walk(&path, entries, &mut files, &mut seen, &mut ignored, &mut unlisted);
        files.sort();
        unlisted.sort();
        Ok(Found { root: path, files, explicit: false, ignored, unlisted })
    } else {
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(Found { root, files: vec![path], explicit: true, ignored, unlisted })
    }
}

/// The entries of a folder, sorted by name, so that which of two paths to
/// one file is read does not depend on the order the file system lists
/// them in.
fn list(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// The files under `dir` (whose `entries` are listed), links followed
/// once: a file or folder reached a second time (a link loop, a link to
/// what was read) is ignored, and a folder that cannot be listed is kept
/// in `unlisted`.
fn walk(
    dir: &Path,
    entries: Vec<fs::DirEntry>,
    out: &mut Vec<PathBuf>,
    seen: &mut Seen,
    ignored: &mut Vec<Ignored>,
    unlisted: &mut Vec<(PathBuf, String)>,
) {
    // The output folder of an earlier run is the usual input of the next
    // stage: only its kept shards are documents, not its stats or rejects.
    let curate_output = dir.join(".curate").is_dir();
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden entries are skipped: they include our own temporary files.
        if name.starts_with('.') || (curate_output && !name.starts_with("part-")) {
            continue;
        }
        let path = entry.path();
        // A file we cannot stat (a dangling link) is still listed: reading it
        // fails, and that is counted where the user looks, in the stats.
        let Ok(meta) = fs::metadata(&path) else {
            out.push(path);
            continue;
        };
        if reached_before(&path, &meta, seen, ignored) {
            continue;
        }
        if meta.is_dir() {
            match list(&path) {
                Ok(entries) => walk(&path, entries, out, seen, ignored, unlisted),
                Err(e) => unlisted.push((path, e.to_string())),
            }
        } else {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_jsonl_is_cut_into_byte_ranges_and_compressed_files_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b.jsonl"), vec![b'x'; 25]).unwrap();
        fs::write(dir.path().join("a.jsonl.zst"), vec![0; 25]).unwrap();
        fs::write(dir.path().join("notes.txt"), "hi").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/c.ndjson.gz"), vec![0; 3]).unwrap();
        let plan = plan(dir.path().to_str().unwrap(), None, 10).unwrap();
        let names: Vec<_> = plan.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.jsonl.zst", "b.jsonl", "sub/c.ndjson.gz"]);
        let spans: Vec<_> = plan.units.iter().map(|u| (u.file, u.span)).collect();
        assert_eq!(
            spans,
            [
                (0, Span::Whole),
                (1, Span::Bytes { start: 0, end: 10 }),
                (1, Span::Bytes { start: 10, end: 20 }),
                (1, Span::Bytes { start: 20, end: 25 }),
                (2, Span::Whole)
            ]
        );
        assert_eq!(plan.ignored, [Ignored { path: dir.path().join("notes.txt"), why: WhyIgnored::NotAnInputFormat }]);
    }

    #[test]
    fn an_earlier_runs_output_folder_contributes_only_its_shards() {
        let dir = tempfile::tempdir().unwrap();
        for sub in [".curate", "stats", "rejected"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        for file in [
            "part-000000-000.jsonl.zst",
            "stats.json",
            "stats/rank-00000-of-00001.json",
            "rejected/part-000000-000.jsonl.zst",
        ] {
            fs::write(dir.path().join(file), "").unwrap();
        }
        let plan = plan(dir.path().to_str().unwrap(), None, 10).unwrap();
        let names: Vec<_> = plan.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["part-000000-000.jsonl.zst"]);
    }

    /// See: issue 13, defect 3.
    #[test]
    fn r13_links_are_followed_once_and_loops_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a.jsonl"), "{}\n").unwrap();
        fs::write(root.join("sub/b.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("sub/b.jsonl", root.join("c-link.jsonl")).unwrap();
        std::os::unix::fs::symlink("missing.jsonl", root.join("dangling.jsonl")).unwrap();
        let plan = plan(root.to_str().unwrap(), None, 10).unwrap();
        let names: Vec<_> = plan.files.iter().map(|f| f.name.as_str()).collect();
        // Each file once, by the path reached first in name order; the
        // dangling link stays, to be counted as unreadable when read.
        assert_eq!(names, ["a.jsonl", "c-link.jsonl", "dangling.jsonl"]);
        assert_eq!(
            plan.ignored,
            [
                Ignored { path: root.join("sub/b.jsonl"), why: WhyIgnored::SameAs(root.join("c-link.jsonl")) },
                Ignored { path: root.join("sub/up"), why: WhyIgnored::SameAs(root.clone()) },
            ]
        );
        assert_eq!(
            plan.ignored[1].to_string(),
            format!("ignored {}: the same as {}, read already (a link)", root.join("sub/up").display(), root.display())
        );
        let glob = format!("{}/**/*.jsonl", root.display());
        let globbed = super::plan(&glob, None, 10).unwrap();
        let names: Vec<_> = globbed.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.jsonl", "c-link.jsonl"], "a glob matches files that exist, each once");
    }

    #[test]
    fn a_listing_skips_what_a_folder_walk_skips() {
        let keys = [
            ".curate/run.json",
            "part-000000-000.jsonl.zst",
            "stats.json",
            "sub/.curate/run.json",
            "sub/part-000001-000.parquet",
            "sub/rejected/part-000001-000.parquet",
            "data/.hidden.jsonl",
            "data/a.jsonl",
        ];
        let outputs = run_outputs(keys.iter().copied());
        let read = |root: &str| -> Vec<&str> {
            keys.iter().copied().filter(|k| k.starts_with(root) && !skipped_in_listing(k, root, &outputs)).collect()
        };
        assert_eq!(read(""), ["part-000000-000.jsonl.zst"], "the top is a run's output: only its shards");
        assert_eq!(read("sub"), ["sub/part-000001-000.parquet"]);
        assert_eq!(read("data"), ["data/a.jsonl"]);
    }

    #[test]
    fn missing_and_empty_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(plan(dir.path().to_str().unwrap(), None, 10), Err(PlanError::Empty(_))));
        let missing = dir.path().join("nope");
        assert!(matches!(plan(missing.to_str().unwrap(), None, 10), Err(PlanError::Missing(_))));
        fs::write(dir.path().join("x.csv"), "a").unwrap();
        let err = plan(dir.path().join("x.csv").to_str().unwrap(), None, 10).unwrap_err();
        assert!(matches!(err, PlanError::UnknownFormat(_)));
    }
}
