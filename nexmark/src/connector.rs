//! `'connector' = 'nexmark'`: the generator as a source of eddy's connector registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
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

impl SourceFactory for NexmarkSourceFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        // As in Flink, one split per source subtask.
        let cfg = GeneratorConfig {
            num_splits: parallelism,
            ..self.cfg.clone()
        };
        let identity = self.reorder.iter().enumerate().all(|(i, r)| i == *r);
        Ok(Box::new(NexmarkSource {
            base_time: cfg.base_time_ms,
            paced: !cfg.max_emit_speed,
            generator: NexmarkGenerator::new(Arc::new(cfg), subtask, self.columns)
                .with_event_types(self.types),
            reorder: (!identity).then(|| self.reorder.clone()),
            output: self.output.clone(),
            started: None,
        }))
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

struct NexmarkSource {
    generator: NexmarkGenerator,
    reorder: Option<Vec<usize>>,
    output: SchemaRef,
    base_time: i64,
    paced: bool,
    started: Option<Instant>,
}

impl Source for NexmarkSource {
    fn name(&self) -> &str {
        "nexmark"
    }

    fn poll_next(&mut self, _ctx: &mut OperatorContext) -> Result<SourcePoll> {
        if self.paced {
            // `max-emit-speed` = false: release events when the wall clock reaches their time.
            let started = *self.started.get_or_insert_with(Instant::now);
            if let Some(last) = self.generator.last_timestamp() {
                let due = Duration::from_millis((last - self.base_time).max(0) as u64);
                let elapsed = started.elapsed();
                if due > elapsed {
                    std::thread::sleep((due - elapsed).min(Duration::from_millis(100)));
                    return Ok(SourcePoll::Pending);
                }
            }
        }
        let Some(batch) = self.generator.next_batch() else {
            return Ok(SourcePoll::End);
        };
        let batch = match &self.reorder {
            None => batch,
            Some(order) => batch.project(order)?.with_schema(self.output.clone())?,
        };
        Ok(SourcePoll::Batch(batch))
    }
}
