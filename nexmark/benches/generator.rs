//! Generator throughput on one core: events per second with every column, and bid events per
//! second when only bids are generated (as the `bid` view reads them, with the `event_type`
//! filter pushed into the source).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use nexmark::generator::{EventColumns, NexmarkGenerator};
use nexmark::GeneratorConfig;

/// The allocator of the `eddy` binary: batches' buffers are allocated and freed at this rate
/// in a real run too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: u64 = 1_000_000;

fn generate(c: &mut Criterion) {
    let cfg = Arc::new(GeneratorConfig {
        events_num: EVENTS,
        first_event_rate: 10_000_000.0,
        ..GeneratorConfig::default()
    });
    let mut group = c.benchmark_group("nexmark_generator");
    group.sample_size(10);
    let bid_columns = EventColumns {
        event_type: true,
        person: false,
        auction: false,
        bid: true,
    };
    let cases = [
        (
            "all_events_all_columns",
            EventColumns::ALL,
            [true; 3],
            EVENTS,
        ),
        (
            "bids_only",
            bid_columns,
            [false, false, true],
            EVENTS * 46 / 50,
        ),
    ];
    for (name, cols, types, elements) in cases {
        group.throughput(Throughput::Elements(elements));
        group.bench_function(name, |b| {
            b.iter_batched(
                || NexmarkGenerator::new(cfg.clone(), 0, cols).with_event_types(types),
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
