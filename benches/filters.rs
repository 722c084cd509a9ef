//! Throughput of each document filter on real English text (the bundled
//! Moby-Dick excerpt), one document at a time on one thread:
//! `cargo bench --bench filters`. `curate bench` measures the same on any
//! input, on one core and on all cores.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use curate_filters::words::split_into_words;
use curate_filters::{
    C4QualityConfig, Document, Filter, FilterConfig, FineWebQualityConfig, GopherQualityConfig, GopherRepetitionConfig,
    Measure, PiiConfig,
};

fn sample() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/corpus/moby_dick.jsonl.zst");
    let raw =
        zstd::decode_all(std::fs::File::open(path).expect("the fixture exists")).expect("the fixture decompresses");
    raw.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(l).expect("JSON")["text"].as_str().expect("text").to_owned()
        })
        .collect()
}

fn bench_filter(c: &mut Criterion, name: &str, filter: &dyn Filter, texts: &[String]) {
    let mut group = c.benchmark_group("filters");
    group.throughput(Throughput::Bytes(texts.iter().map(|t| t.len() as u64).sum()));
    group.bench_function(name, |b| {
        b.iter(|| {
            for text in texts {
                black_box(filter.filter(&Document::text_only(text), Measure::Verdict));
            }
        })
    });
    group.finish();
}

fn filters(c: &mut Criterion) {
    let texts = sample();
    let mut group = c.benchmark_group("filters");
    group.throughput(Throughput::Bytes(texts.iter().map(|t| t.len() as u64).sum()));
    group.bench_function("split_into_words", |b| {
        b.iter(|| {
            for text in &texts {
                black_box(split_into_words(text));
            }
        })
    });
    group.finish();
    bench_filter(c, "gopher_quality", &GopherQualityConfig::default().build().unwrap(), &texts);
    bench_filter(c, "gopher_repetition", &GopherRepetitionConfig::default().build().unwrap(), &texts);
    bench_filter(c, "c4_quality", &C4QualityConfig::default().build().unwrap(), &texts);
    bench_filter(c, "fineweb_quality", &FineWebQualityConfig::default().build().unwrap(), &texts);
    bench_filter(c, "pii", &PiiConfig::default().build().unwrap(), &texts);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = filters
}
criterion_main!(benches);
