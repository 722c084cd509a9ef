//! Options as pipeline files and the command line give them: enums chosen
//! by name, whose names live beside the variants (so the command line lists
//! them in `--help` and the library needs no argument parser), and values
//! refused with the key that holds them.

/// An enum whose every value has one stable name.
pub trait Named: Sized + Copy + Send + Sync + 'static {
    /// Every value, in the order `--help` lists them.
    const ALL: &'static [Self];

    fn name(self) -> &'static str;

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// A value that cannot be used, named by its key in the file
/// (`tokenize.shard_tokens`); the command line names the matching flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct BadValue {
    pub key: String,
    pub message: String,
}

impl BadValue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> BadValue {
        BadValue { key: key.into(), message: message.into() }
    }
}
