//! `curate lm train`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use curate::io::atomic;
use curate::io::doc::FieldNames;
use curate::io::docs::UnitBatches;
use curate::io::read::ReadOptions;

use super::{print_errors, usage, Error, InputArgs};

#[derive(Subcommand)]
pub enum LmCommand {
    /// Estimate a modified Kneser-Ney n-gram model from documents (one sentence a line) and write it as ARPA.
    Train(LmTrainArgs),
}

#[derive(clap::Args)]
pub struct LmTrainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Where to write the model (ARPA text).
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, default_value_t = 3)]
    pub order: usize,
    /// Lowercase the text first (then set `lowercase = true` on the perplexity step too).
    #[arg(long)]
    pub lowercase: bool,
}

pub fn train_lm(args: LmTrainArgs) -> Result<ExitCode, Error> {
    let mut model = curate_filters::KneserNey::new(args.order).map_err(|e| usage(format!("--order: {e}")))?;
    let plan = curate::io::plan::plan(&args.input.input, None, u64::MAX)?;
    let names = FieldNames { text: args.input.text_field, id: args.input.id_field, raw_text: false };
    let read = std::sync::Arc::new(ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
    let mut batches = UnitBatches::all(&plan, read);
    let (mut docs, mut sentences) = (0u64, 0u64);
    while let Some((_, batch)) = batches.next_batch() {
        for doc in batch {
            docs += 1;
            let text = if args.lowercase { doc.text.to_lowercase() } else { doc.text };
            for line in text.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                if !words.is_empty() {
                    model.add_sentence(&words);
                    sentences += 1;
                }
            }
        }
    }
    let arpa = model.arpa()?;
    atomic::write(&args.output, arpa.as_bytes())?;
    eprintln!(
        "curate: a {}-gram model of {sentences} sentences from {docs} documents ({} bad records skipped); wrote {}",
        args.order,
        batches.errors.docs,
        args.output.display()
    );
    print_errors(&batches.errors.kinds);
    Ok(ExitCode::SUCCESS)
}
