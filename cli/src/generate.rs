//! `eddy nexmark generate`: the person, auction and bid streams as CSV or JSON files.
//!
//! With the same seed, rate, event count and parallelism these are exactly the events
//! `eddy nexmark run` feeds its queries (split `i` of `--parallelism P` is written to
//! `part-i` of each stream).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{AsArray, Int32Array, RecordBatch, StructArray};
use arrow::compute::filter;
use arrow::compute::kernels::cmp::eq;
use clap::{Args, ValueEnum};
use nexmark::generator::{EventColumns, NexmarkGenerator};
use nexmark::GeneratorConfig;

use crate::Failure;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Json,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Number of events.
    #[arg(long)]
    pub events: u64,
    /// Output directory; `person/`, `auction/` and `bid/` are created in it.
    #[arg(long)]
    pub out: PathBuf,
    /// `first-event.rate`: event-time density in events per second.
    #[arg(long, default_value_t = 10_000_000)]
    pub rate: u64,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: FileFormat,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of source splits, as `nexmark run --parallelism` (each split has its own
    /// timeline, so this changes timestamps).
    #[arg(long, default_value_t = 1)]
    pub parallelism: usize,
    /// Start each CSV file with a header row of column names, for tools that want one.
    /// Flink's and eddy's csv format read none, so by default there is none.
    #[arg(long)]
    pub header: bool,
}

const STREAMS: [(&str, i32); 3] = [("person", 0), ("auction", 1), ("bid", 2)];

pub fn run(args: GenerateArgs) -> Result<(), Failure> {
    if args.events == 0 || args.rate == 0 || args.parallelism == 0 {
        return Err(Failure::User(
            "--events, --rate and --parallelism must be at least 1".into(),
        ));
    }
    let cfg = GeneratorConfig {
        events_num: args.events,
        first_event_rate: args.rate as f64,
        seed: args.seed,
        num_splits: args.parallelism,
        ..GeneratorConfig::default()
    };
    let cfg = Arc::new(cfg);
    let ext = if args.format == FileFormat::Csv {
        "csv"
    } else {
        "json"
    };
    let mut counts = [0u64; 3];
    for split in 0..args.parallelism {
        let mut writers = Vec::new();
        for (name, _) in STREAMS {
            let dir = args.out.join(name);
            std::fs::create_dir_all(&dir)
                .map_err(|e| Failure::User(format!("cannot create {}: {e}", dir.display())))?;
            let path = dir.join(format!("part-{split}.{ext}"));
            let f = File::create(&path)
                .map_err(|e| Failure::User(format!("cannot create {}: {e}", path.display())))?;
            writers.push((path, BufWriter::with_capacity(1 << 20, f), args.header));
        }
        let mut generator = NexmarkGenerator::new(cfg.clone(), split, EventColumns::ALL);
        let mut buf = Vec::new();
        while let Some(batch) = generator.next_batch() {
            let types: &Int32Array = batch.column(0).as_primitive();
            for (k, (_, code)) in STREAMS.iter().enumerate() {
                let mask =
                    eq(types, &Int32Array::new_scalar(*code)).map_err(kernel::Error::from)?;
                let rows = filter(batch.column(k + 1), &mask).map_err(kernel::Error::from)?;
                let rows: &StructArray = rows.as_struct();
                let stream = RecordBatch::from(rows.clone());
                counts[k] += stream.num_rows() as u64;
                let (path, w, header) = &mut writers[k];
                buf.clear();
                match args.format {
                    FileFormat::Csv => formats::write_csv(&stream, b',', *header, &mut buf)?,
                    FileFormat::Json => formats::write_json(&stream, &mut buf)?,
                }
                *header = false;
                w.write_all(&buf)
                    .map_err(|e| Failure::User(format!("cannot write {}: {e}", path.display())))?;
            }
        }
        for (path, mut w, _) in writers {
            w.flush()
                .map_err(|e| Failure::User(format!("cannot write {}: {e}", path.display())))?;
        }
    }
    eprintln!(
        "wrote {} persons, {} auctions, {} bids to {}",
        counts[0],
        counts[1],
        counts[2],
        args.out.display()
    );
    Ok(())
}
