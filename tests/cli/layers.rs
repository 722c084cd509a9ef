//! The library's layers point down (see `src/lib.rs`): every path a module
//! of the `curate` crate names through `crate::` or `super::` must lead to
//! its own top-level module or to one of a lower layer. Also: the library
//! names no clap, returns no `Result<_, String>`, and within the pipeline
//! only the registry names step implementations.

use std::path::{Path, PathBuf};

use crate::util::root;

/// Each top-level module of the library and its layer.
const LAYERS: &[(&str, u32)] = &[
    ("runtime", 0),
    ("io", 1),
    ("step", 2),
    ("stage", 2),
    ("dedup", 3),
    ("tokenize", 3),
    ("decont", 4),
    ("pipeline", 5),
];

fn layer(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

/// The module path of a file under `src/` (`io/plan.rs` → `["io", "plan"]`).
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// The top-level modules that the paths in `text` (a file at `module`)
/// reach through `crate::` and `super::`.
fn reached(module: &[String], text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("crate::").chain(text.match_indices("super::")) {
        // Only whole path starts: not `curate::`, not `my_crate::`.
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':') {
            continue;
        }
        let mut rest = &text[i..];
        let mut at: Vec<String> = if rest.starts_with("crate::") {
            rest = &rest["crate::".len()..];
            Vec::new()
        } else {
            module.to_vec()
        };
        while let Some(after) = rest.strip_prefix("super::") {
            at.pop();
            rest = after;
        }
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        let top = at.first().cloned().unwrap_or(name);
        if !top.is_empty() {
            out.push(top);
        }
    }
    out
}

/// Every rule broken by the files (relative path, text) of a library tree.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (relative, text) in files {
        let module = module_path(relative);
        let Some(own) = module.first() else { continue };
        let Some(own_layer) = layer(own) else {
            found.push(format!("{}: module {own} has no layer in LAYERS", relative.display()));
            continue;
        };
        for target in reached(&module, text) {
            match layer(&target) {
                Some(l) if target != *own && l >= own_layer => {
                    found.push(format!("{}: {own} (layer {own_layer}) uses {target} (layer {l})", relative.display()))
                }
                _ => {}
            }
        }
        if text.contains("clap::") || text.contains("use clap") {
            found.push(format!("{}: the library names clap", relative.display()));
        }
        for line in text.lines() {
            if line.match_indices("Result<").any(|(at, _)| error_type(&line[at + "Result<".len()..]) == Some("String"))
            {
                found.push(format!("{}: returns Result<_, String>: {}", relative.display(), line.trim()));
            }
        }
        let names_steps = text.contains("curate_filters::") || text.contains("crate::dedup");
        if own == "pipeline" && names_steps && !relative.ends_with("pipeline/registry.rs") {
            found.push(format!("{}: only the registry names step implementations", relative.display()));
        }
    }
    found
}

/// The second argument of the generics that `args` starts (`T, E>...`): `E`.
fn error_type(args: &str) -> Option<&str> {
    let mut depth = 0;
    let mut comma = None;
    for (i, c) in args.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' if depth > 0 => depth -= 1,
            '>' => return comma.map(|start: usize| args[start..i].trim()),
            ',' if depth == 0 => comma = Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The library's files: `src/` without the command line.
fn library_files(src: &Path) -> Vec<(PathBuf, String)> {
    fn walk(src: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(src).unwrap().to_path_buf();
            if relative == Path::new("cli") || relative == Path::new("main.rs") || relative == Path::new("lib.rs") {
                continue;
            }
            if path.is_dir() {
                walk(src, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(src, src, &mut out);
    out.sort();
    out
}

#[test]
fn every_import_of_the_library_points_down() {
    let files = library_files(&root().join("src"));
    assert!(files.len() > 40, "read {} files", files.len());
    let found = violations(&files);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The check itself catches each kind of fault.
#[test]
fn the_layer_check_catches_upward_imports() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_owned());
    let tree = [
        file("io/read.rs", "use crate::runtime::tally::Kinds;\nuse super::plan::Unit;\n"),
        file("io/bad.rs", "use crate::pipeline::stats::Stats;\n"),
        file("io/mod.rs", "use super::stage::StageDir;\n"),
        file("step/mod.rs", "fn f() -> crate::stage::StageError { todo!() }\n"),
        file("dedup/lines.rs", "use super::super::pipeline::config::Pipeline;\nuse curate::pipeline::x;\n"),
        file("runtime/pool.rs", "#[derive(clap::ValueEnum)]\npub fn f() -> Result<(), String> {}\n"),
        file(
            "runtime/task.rs",
            "fn g() -> Result<BTreeMap<u32, String>, E> {}\nfn h() -> Result<(Vec<u8>, String), E> {}\n",
        ),
        file("pipeline/judge.rs", "use crate::dedup::filter::DedupStep;\n"),
        file("pipeline/registry.rs", "use crate::dedup::filter::DedupStep;\n"),
    ];
    let found = violations(&tree);
    let expected = [
        "io/bad.rs: io (layer 1) uses pipeline (layer 5)",
        "io/mod.rs: io (layer 1) uses stage (layer 2)",
        "step/mod.rs: step (layer 2) uses stage (layer 2)",
        "dedup/lines.rs: dedup (layer 3) uses pipeline (layer 5)",
        "runtime/pool.rs: the library names clap",
        "runtime/pool.rs: returns Result<_, String>: pub fn f() -> Result<(), String> {}",
        "pipeline/judge.rs: only the registry names step implementations",
    ];
    assert_eq!(found, expected);
}
