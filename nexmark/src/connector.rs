//! `'connector' = 'nexmark'`: the generator as a source of eddy's connector registry.
//!
//! As in Flink, each source subtask generates one split (its share of the event ids). A
//! checkpoint records how many events of each split were produced; since an event is a
//! function of its number, a restored split produces exactly the events it had not. Split
//! `i` of `n` stays split `i` of `n` after a rescale, so a restored subtask may generate
//! several splits (by event time in turn) or none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use kernel::checkpoint::{CheckpointId, SplitState};
use kernel::connector::{ColumnFilter, Connector, TableDescriptor};
use kernel::operator::{OperatorContext, Source, SourceFactory, SourcePoll};
use kernel::types::sql_type_name;
use kernel::{Error, Result};

use crate::config::{GeneratorConfig, OPTION_KEYS};
use crate::generator::{event_schema, EventColumns, NexmarkGenerator};

pub struct NexmarkConnector;

impl Connector for NexmarkConnector {
    fn name(&self) -> &'static str {
        "nexmark"
    }

    fn option_keys(&self) -> &'static [&'static str] {
        OPTION_KEYS
    }

    fn filterable_columns(&self) -> &'static [&'static str] {
        &["event_type"]
    }

    fn source(
        &self,
        table: &TableDescriptor,
        projection: Option<&[usize]>,
        filters: &[ColumnFilter],
    ) -> Result<Arc<dyn SourceFactory>> {
        let events = event_schema();
        // Map each declared column onto the generator's; types must match Flink's DDL.
        let mut to_event = Vec::new();
        for f in table.schema.fields() {
            let (i, ef) = events.column_with_name(f.name()).ok_or_else(|| {
                Error::user(format!(
                    "table '{}': the nexmark connector has no column '{}'; it produces event_type, person, auction, bid",
                    table.name,
                    f.name()
                ))
            })?;
            if sql_type_name(f.data_type()) != sql_type_name(ef.data_type()) {
                return Err(Error::user(format!(
                    "table '{}': column '{}' is declared {} but the nexmark connector produces {}",
                    table.name,
                    f.name(),
                    sql_type_name(f.data_type()),
                    sql_type_name(ef.data_type())
                )));
            }
            to_event.push(i);
        }
        let all: Vec<usize> = (0..table.schema.fields().len()).collect();
        let wanted: Vec<usize> = projection
            .unwrap_or(&all)
            .iter()
            .map(|&c| to_event[c])
            .collect();
        let mut sorted = wanted.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let columns = EventColumns::from_projection(&sorted);
        // The generator emits in event-schema order; reorder to the requested order.
        let reorder: Vec<usize> = wanted
            .iter()
            .map(|w| sorted.iter().position(|s| s == w).expect("present"))
            .collect();
        let output = Arc::new(events.project(&wanted)?);
        let cfg = GeneratorConfig::from_options(&table.options, &table.name)?;
        Ok(Arc::new(NexmarkSourceFactory {
            cfg,
            columns,
            types: event_types(filters),
            reorder,
            output,
        }))
    }
}

/// Which event types (person, auction, bid) pass every `event_type` filter.
fn event_types(filters: &[ColumnFilter]) -> [bool; 3] {
    let mut types = [true; 3];
    for f in filters.iter().filter(|f| f.column == "event_type") {
        let wanted: Vec<i64> = f
            .values
            .iter()
            .filter_map(|v| v.cast_to(&arrow::datatypes::DataType::Int64).ok())
            .filter_map(|v| match v {
                kernel::connector::ScalarValue::Int64(Some(x)) => Some(x),
                _ => None,
            })
            .collect();
        for (t, on) in types.iter_mut().enumerate() {
            *on &= wanted.contains(&(t as i64));
        }
    }
    types
}

#[derive(Debug)]
struct NexmarkSourceFactory {
    cfg: GeneratorConfig,
    columns: EventColumns,
    /// Event types to generate at all (from pushed-down `event_type` filters).
    types: [bool; 3],
    reorder: Vec<usize>,
    output: SchemaRef,
}

impl NexmarkSourceFactory {
    /// Split `index` of `num_splits`, from event `produced` of it.
    fn split(&self, index: usize, num_splits: usize, produced: u64) -> SplitGenerator {
        let cfg = GeneratorConfig {
            num_splits,
            ..self.cfg.clone()
        };
        let generator = NexmarkGenerator::new(Arc::new(cfg), index, self.columns)
            .with_event_types(self.types)
            .resume_at(produced);
        SplitGenerator {
            index,
            num_splits,
            generator,
        }
    }

    fn source(&self, splits: Vec<SplitGenerator>) -> Box<dyn Source> {
        let identity = self.reorder.iter().enumerate().all(|(i, r)| i == *r);
        Box::new(NexmarkSource {
            base_time: self.cfg.base_time_ms,
            paced: !self.cfg.max_emit_speed,
            splits,
            reorder: (!identity).then(|| self.reorder.clone()),
            output: self.output.clone(),
            started: None,
        })
    }
}

impl SourceFactory for NexmarkSourceFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        // As in Flink, one split per source subtask.
        Ok(self.source(vec![self.split(subtask, parallelism, 0)]))
    }

    fn restore(
        &self,
        _subtask: usize,
        _parallelism: usize,
        splits: Vec<SplitState>,
    ) -> Result<Box<dyn Source>> {
        let mut generators = Vec::new();
        for s in splits {
            let bad = || {
                Error::user(format!(
                    "the checkpointed nexmark split '{}' does not parse",
                    s.split
                ))
            };
            let (index, num_splits) = s
                .split
                .strip_prefix("split-")
                .and_then(|rest| rest.split_once("-of-"))
                .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
                .ok_or_else(bad)?;
            let produced = s
                .position
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .ok_or_else(bad)?;
            generators.push(self.split(index, num_splits, produced));
        }
        Ok(self.source(generators))
    }

    fn describe(&self) -> String {
        let events = if self.cfg.events_num == 0 {
            "unbounded".to_string()
        } else {
            self.cfg.events_num.to_string()
        };
        format!(
            "source nexmark, {events} events, first-event.rate {}, seed {}, columns {:?}, event types {:?}",
            self.cfg.first_event_rate, self.cfg.seed, self.columns, self.types
        )
    }
}

/// One split being generated.
struct SplitGenerator {
    index: usize,
    num_splits: usize,
    generator: NexmarkGenerator,
}

struct NexmarkSource {
    splits: Vec<SplitGenerator>,
    reorder: Option<Vec<usize>>,
    output: SchemaRef,
    base_time: i64,
    paced: bool,
    /// When event time `base_time` was (or would have been) due, for pacing.
    started: Option<Instant>,
}

impl Source for NexmarkSource {
    fn name(&self) -> &str {
        "nexmark"
    }

    fn poll_next(&mut self, _ctx: &mut OperatorContext) -> Result<SourcePoll> {
        // The split furthest behind in event time goes next, so splits advance together.
        let Some(split) = self
            .splits
            .iter_mut()
            .filter(|s| s.generator.remaining() > 0)
            .min_by_key(|s| s.generator.last_timestamp().unwrap_or(i64::MIN))
        else {
            return Ok(SourcePoll::End);
        };
        if self.paced {
            // `max-emit-speed` = false: release events when the wall clock reaches their time.
            // A restored source is due where it stopped, not at the stream's start.
            let base_time = self.base_time;
            let last = split.generator.last_timestamp();
            let started = *self.started.get_or_insert_with(|| {
                let done = last.map_or(0, |t| (t - base_time).max(0) as u64);
                Instant::now()
                    .checked_sub(Duration::from_millis(done))
                    .unwrap_or_else(Instant::now)
            });
            if let Some(last) = last {
                let due = Duration::from_millis((last - base_time).max(0) as u64);
                let elapsed = started.elapsed();
                if due > elapsed {
                    std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
                    return Ok(SourcePoll::Pending);
                }
            }
        }
        let Some(batch) = split.generator.next_batch() else {
            return Ok(SourcePoll::Pending); // this split is done; the next poll finds another
        };
        let batch = match &self.reorder {
            None => batch,
            Some(order) => batch.project(order)?.with_schema(self.output.clone())?,
        };
        Ok(SourcePoll::Batch(batch))
    }

    /// Events produced per split (finished splits included, so a restore does not redo
    /// them).
    fn snapshot(&mut self, _checkpoint_id: CheckpointId) -> Result<Vec<SplitState>> {
        Ok(self
            .splits
            .iter()
            .map(|s| SplitState {
                split: format!("split-{}-of-{}", s.index, s.num_splits),
                position: s.generator.produced().to_le_bytes().to_vec(),
            })
            .collect())
    }
}
