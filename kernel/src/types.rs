//! What flows on an edge, and what an edge's schema says about it.

use std::fmt;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use serde::{Deserialize, Serialize};

/// Event time in milliseconds since the Unix epoch, as Flink's `TIMESTAMP(3)` rowtime.
pub type EventTime = i64;

/// The wall clock in milliseconds since the Unix epoch: processing time.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Progress of event time on an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watermark {
    /// No row with an event time at or below this will follow (late rows excepted).
    EventTime(EventTime),
    /// This input has no data for now; downstream ignores it when taking the minimum.
    Idle,
}

/// Marks a consistent cut of the stream for checkpoint `checkpoint_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Barrier {
    pub checkpoint_id: u64,
}

/// The unit of exchange on every edge.
#[derive(Debug, Clone)]
pub enum Message {
    Batch(RecordBatch),
    Watermark(Watermark),
    Barrier(Barrier),
    /// The upstream subtask has finished; nothing follows on this channel.
    End,
}

/// How rows on an edge are to be read, as Flink's changelog modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangelogMode {
    /// Only inserts; no op column.
    AppendOnly,
    /// Inserts, update-afters and deletes keyed by the upsert key; op column present.
    Upsert,
    /// Inserts, update-before/after pairs and deletes; op column present.
    Retract,
}

/// Row kinds of a changelog, stored as the `Int8` op column. Values match Flink's `RowKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum RowKind {
    Insert = 0,
    UpdateBefore = 1,
    UpdateAfter = 2,
    Delete = 3,
}

impl RowKind {
    /// Flink's short form, as printed by the `print` connector.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    pub fn from_i8(v: i8) -> Option<Self> {
        Some(match v {
            0 => RowKind::Insert,
            1 => RowKind::UpdateBefore,
            2 => RowKind::UpdateAfter,
            3 => RowKind::Delete,
            _ => return None,
        })
    }
}

/// The schema of an edge: the Arrow schema plus the stream properties operators rely on.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSchema {
    pub schema: SchemaRef,
    /// Column holding the event-time attribute (rowtime), if any.
    pub event_time: Option<usize>,
    /// Columns the stream is keyed / partitioned by, if any.
    pub keys: Vec<usize>,
    pub changelog: ChangelogMode,
    /// The op column for non-append changelogs.
    pub op_column: Option<usize>,
}

impl StreamSchema {
    pub fn append_only(schema: SchemaRef) -> Self {
        StreamSchema {
            schema,
            event_time: None,
            keys: vec![],
            changelog: ChangelogMode::AppendOnly,
            op_column: None,
        }
    }

    pub fn with_event_time(mut self, column: Option<usize>) -> Self {
        self.event_time = column;
        self
    }

    /// An updating stream of `schema`'s rows: the op column is appended to the schema.
    pub fn updating(schema: SchemaRef, mode: ChangelogMode) -> Self {
        if mode == ChangelogMode::AppendOnly {
            return Self::append_only(schema);
        }
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        let op = fields.len();
        fields.push(std::sync::Arc::new(crate::changelog::op_field()));
        StreamSchema {
            schema: std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
            event_time: None,
            keys: vec![],
            changelog: mode,
            op_column: Some(op),
        }
    }

    /// True when rows may be updated or deleted after they are sent (the op column is present).
    pub fn is_updating(&self) -> bool {
        self.changelog != ChangelogMode::AppendOnly
    }
}

impl fmt::Display for StreamSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, field) in self.schema.fields().iter().enumerate() {
            if self.op_column == Some(i) {
                continue;
            }
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{} {}", field.name(), sql_type_name(field.data_type()))?;
            if !field.is_nullable() {
                write!(f, " NOT NULL")?;
            }
            if self.event_time == Some(i) {
                write!(f, " *ROWTIME*")?;
            }
        }
        write!(f, ")")?;
        if self.changelog != ChangelogMode::AppendOnly {
            write!(f, " {:?}", self.changelog)?;
        }
        Ok(())
    }
}

/// A Flink-style SQL name for an Arrow type, for `explain` and error messages.
pub fn sql_type_name(t: &DataType) -> String {
    use arrow::datatypes::TimeUnit;
    match t {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(unit, tz) => {
            let p = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond => 6,
                TimeUnit::Nanosecond => 9,
            };
            if tz.is_some() {
                format!("TIMESTAMP_LTZ({p})")
            } else {
                format!("TIMESTAMP({p})")
            }
        }
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.name(), sql_type_name(f.data_type())))
                .collect();
            format!("ROW<{}>", inner.join(", "))
        }
        other => format!("{other}"),
    }
}
