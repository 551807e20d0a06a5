//! Generator throughput on one core: events generated per second, all columns and bids only.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nexmark::generator::{EventColumns, NexmarkGenerator};
use nexmark::GeneratorConfig;

const EVENTS: u64 = 1_000_000;

fn generate(c: &mut Criterion) {
    let cfg = Arc::new(GeneratorConfig {
        events_num: EVENTS,
        first_event_rate: 10_000_000.0,
        ..GeneratorConfig::default()
    });
    let mut group = c.benchmark_group("nexmark_generator");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    let bids_only = EventColumns {
        event_type: true,
        person: false,
        auction: false,
        bid: true,
    };
    for (name, cols) in [
        ("all_columns", EventColumns::ALL),
        ("event_type_and_bid", bids_only),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || NexmarkGenerator::new(cfg.clone(), 0, cols),
                |mut g| {
                    let mut rows = 0;
                    while let Some(batch) = g.next_batch() {
                        rows += batch.num_rows();
                    }
                    rows
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
