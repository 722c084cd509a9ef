//! `curate lm train`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use curate::doc::FieldNames;

use super::{fatal, print_errors, InputArgs};

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

pub fn train_lm(args: LmTrainArgs) -> ExitCode {
    let mut model = match curate_filters::KneserNey::new(args.order) {
        Ok(m) => m,
        Err(e) => return fatal(format!("--order: {e}")),
    };
    let plan = match curate::io::plan::plan(&args.input.input, None, u64::MAX) {
        Ok(p) => p,
        Err(e) => return fatal(e),
    };
    let names = FieldNames { text: args.input.text_field, id: args.input.id_field };
    let read = std::sync::Arc::new(curate::io::read::ReadOptions { names, batch_size: 1000, batch_bytes: 16 << 20 });
    let mut batches = curate::io::docs::UnitBatches::new(&plan, (0..plan.units.len()).collect(), read);
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
    let arpa = match model.arpa() {
        Ok(a) => a,
        Err(e) => return fatal(e),
    };
    if let Err(e) = curate::io::atomic::write(&args.output, arpa.as_bytes()) {
        return fatal(format!("cannot write {}: {e}", args.output.display()));
    }
    eprintln!(
        "curate: a {}-gram model of {sentences} sentences from {docs} documents ({} bad records skipped); wrote {}",
        args.order,
        batches.error_docs,
        args.output.display()
    );
    print_errors(&batches.errors);
    ExitCode::SUCCESS
}
