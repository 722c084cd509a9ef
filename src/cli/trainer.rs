//! `curate train`, `generate`, `export` and `eval`: run `curate-train`, the trainer.
//!
//! The trainer links libtorch, so it is a binary of its own: curation
//! machines build and run `curate` without libtorch, and `curate train`
//! finds `curate-train` beside the `curate` executable (or on `PATH`, or at
//! `$CURATE_TRAIN`) and hands it the arguments.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::Error;

const NAME: &str = "curate-train";

fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CURATE_TRAIN") {
        return Some(PathBuf::from(path));
    }
    let beside = std::env::current_exe().ok()?.parent()?.join(NAME);
    if beside.is_file() {
        return Some(beside);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(NAME)).find(|p| p.is_file())
}

/// Replaces this process with `curate-train SUBCOMMAND ARGS...`.
pub fn exec(subcommand: &str, args: Vec<OsString>) -> Result<ExitCode, Error> {
    let Some(trainer) = find() else {
        return Err(Error::Usage(format!(
            "`curate {subcommand}` runs {NAME}, the trainer, which is not beside this curate or on PATH.\n\
             It links libtorch and is built on its own: scripts/quickstart.sh builds it, or\n\
             \x20   venv=$(scripts/libtorch.sh)\n\
             \x20   LIBTORCH_USE_PYTORCH=1 PATH=$venv/bin:$PATH cargo build --release -p curate-trainer"
        )));
    };
    let error = std::process::Command::new(&trainer).arg(subcommand).args(args).exec();
    Err(Error::Trainer { path: trainer, source: error })
}
