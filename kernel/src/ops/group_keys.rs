//! Group keys: maps the key columns of a batch to dense group indices (0, 1, 2, … in
//! first-seen order), the input DataFusion's `GroupsAccumulator`s take.
//!
//! A whole batch is hashed at once (DataFusion's vectorized `create_hashes`), then each row
//! probes one hash table. A single BIGINT key, the common case (Nexmark's auction, bidder,
//! seller), skips the row encoding and compares the integers themselves.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::kernels::boolean::and;
use arrow::compute::{cast, is_not_null};
use arrow::datatypes::{DataType, Int64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows};
use datafusion_common::hash_utils::create_hashes_with_hasher;
use foldhash::fast::FixedState;
use hashbrown::HashTable;

use datafusion_physical_expr::PhysicalExpr;

use crate::ops::evaluate;
use crate::{Error, Result};

/// Interns group keys. Emptied by [`GroupKeys::take`].
pub(crate) struct GroupKeys {
    inner: Inner,
    hashes: Vec<u64>,
}

enum Inner {
    /// No key columns: every row is in group 0.
    Unit { seen: bool },
    /// One BIGINT column.
    Int64 {
        /// (hash, group) per non-null group.
        table: HashTable<(u64, u32)>,
        values: Vec<i64>,
        null_group: Option<u32>,
    },
    /// Any columns, as arrow-row bytes (memcomparable, so equal keys have equal bytes).
    Rows {
        converter: RowConverter,
        /// (hash, group) per group.
        table: HashTable<(u64, u32)>,
        rows: Rows,
    },
}

const HASHER: FixedState = FixedState::with_seed(0x005e_ed0f_e44d);

impl GroupKeys {
    /// Keys with the columns of `schema`.
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let inner = match schema.fields().len() {
            0 => Inner::Unit { seen: false },
            1 if schema.field(0).data_type() == &DataType::Int64 => Inner::Int64 {
                table: HashTable::new(),
                values: Vec::new(),
                null_group: None,
            },
            _ => {
                let converter = super::whole_row_converter(&schema)?;
                let rows = converter.empty_rows(0, 0);
                Inner::Rows {
                    converter,
                    table: HashTable::new(),
                    rows,
                }
            }
        };
        Ok(GroupKeys {
            inner,
            hashes: Vec::new(),
        })
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Unit { seen } => usize::from(*seen),
            Inner::Int64 { values, .. } => values.len(),
            Inner::Rows { rows, .. } => rows.num_rows(),
        }
    }

    /// Bytes held: the keys and the hash table.
    pub fn memory_size(&self) -> usize {
        let slot = size_of::<(u64, u32)>();
        match &self.inner {
            Inner::Unit { .. } => 0,
            Inner::Int64 { table, values, .. } => values.capacity() * 8 + table.capacity() * slot,
            Inner::Rows { table, rows, .. } => rows.size() + table.capacity() * slot,
        }
    }

    /// Evaluates the key expressions `exprs` over `batch` and interns them into `groups`;
    /// returns the key columns.
    pub fn intern_batch(
        &mut self,
        exprs: &[Arc<dyn PhysicalExpr>],
        batch: &RecordBatch,
        groups: &mut Vec<usize>,
    ) -> Result<Vec<ArrayRef>> {
        let keys = exprs
            .iter()
            .map(|k| evaluate(k, batch))
            .collect::<Result<Vec<_>>>()?;
        self.intern(&keys, batch.num_rows(), groups)?;
        Ok(keys)
    }

    /// The group of every row of `keys` (one array per key column, all `rows` long), new keys
    /// getting the next indices. `groups` is cleared first.
    pub fn intern(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        self.map(keys, rows, groups, true)
    }

    /// The group of every row of `keys`, or [`GroupKeys::ABSENT`] for keys not interned;
    /// adds nothing (a probe).
    pub fn lookup(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        groups: &mut Vec<usize>,
    ) -> Result<()> {
        self.map(keys, rows, groups, false)
    }

    /// A key [`GroupKeys::lookup`] did not find.
    pub const ABSENT: usize = usize::MAX;

    fn map(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        groups: &mut Vec<usize>,
        insert: bool,
    ) -> Result<()> {
        groups.clear();
        groups.reserve(rows);
        match &mut self.inner {
            Inner::Unit { seen } => {
                if insert {
                    *seen |= rows > 0;
                }
                let g = if *seen { 0 } else { Self::ABSENT };
                groups.resize(rows, g);
            }
            Inner::Int64 {
                table,
                values,
                null_group,
            } => {
                let col = keys[0].as_primitive::<Int64Type>();
                self.hashes.clear();
                self.hashes.resize(rows, 0);
                create_hashes_with_hasher([col as &dyn Array], &HASHER, &mut self.hashes)?;
                for (i, &h) in self.hashes.iter().enumerate() {
                    if col.is_null(i) {
                        let g = match null_group {
                            Some(g) => *g as usize,
                            None if insert => {
                                values.push(0);
                                *null_group = Some((values.len() - 1) as u32);
                                values.len() - 1
                            }
                            None => Self::ABSENT,
                        };
                        groups.push(g);
                        continue;
                    }
                    let v = col.value(i);
                    let g = match table.find(h, |&(gh, g)| gh == h && values[g as usize] == v) {
                        Some(&(_, g)) => g as usize,
                        None if insert => {
                            let g = values.len() as u32;
                            values.push(v);
                            table.insert_unique(h, (h, g), |&(gh, _)| gh);
                            g as usize
                        }
                        None => Self::ABSENT,
                    };
                    groups.push(g);
                }
            }
            Inner::Rows {
                converter,
                table,
                rows: stored,
            } => {
                let batch_rows = converter.convert_columns(keys)?;
                self.hashes.clear();
                self.hashes.resize(rows, 0);
                create_hashes_with_hasher(keys.iter(), &HASHER, &mut self.hashes)?;
                for (i, &h) in self.hashes.iter().enumerate() {
                    let row = batch_rows.row(i);
                    let g = match table.find(h, |&(gh, g)| gh == h && stored.row(g as usize) == row)
                    {
                        Some(&(_, g)) => g as usize,
                        None if insert => {
                            let g = stored.num_rows() as u32;
                            stored.push(row);
                            table.insert_unique(h, (h, g), |&(gh, _)| gh);
                            g as usize
                        }
                        None => Self::ABSENT,
                    };
                    groups.push(g);
                }
            }
        }
        Ok(())
    }

    /// The keys of `groups`, in that order, as columns (a checkpoint writes the keys of the
    /// groups it changed).
    pub fn keys_of(&self, groups: &[usize]) -> Result<Vec<ArrayRef>> {
        Ok(match &self.inner {
            Inner::Unit { .. } => vec![],
            Inner::Int64 {
                values, null_group, ..
            } => {
                let null = null_group.map(|g| g as usize);
                let column: Int64Array = groups
                    .iter()
                    .map(|&g| (Some(g) != null).then(|| values[g]))
                    .collect();
                vec![Arc::new(column) as ArrayRef]
            }
            Inner::Rows {
                converter, rows, ..
            } => converter.convert_rows(groups.iter().map(|&g| rows.row(g)))?,
        })
    }

    /// The keys of all groups in group order, as columns; the keys are emptied.
    pub fn take(&mut self) -> Result<Vec<ArrayRef>> {
        Ok(match &mut self.inner {
            Inner::Unit { seen } => {
                *seen = false;
                vec![]
            }
            Inner::Int64 {
                table,
                values,
                null_group,
            } => {
                let mut valid = vec![true; values.len()];
                if let Some(g) = null_group.take() {
                    valid[g as usize] = false;
                }
                table.clear();
                let values = std::mem::take(values);
                vec![Arc::new(Int64Array::new(values.into(), Some(valid.into()))) as ArrayRef]
            }
            Inner::Rows {
                converter,
                table,
                rows,
            } => {
                table.clear();
                let taken = std::mem::replace(rows, converter.empty_rows(0, 0));
                converter.convert_rows(&taken)?
            }
        })
    }
}

/// False where any key is null (SQL's `=` never matches a null); `None` when no key has nulls.
pub(crate) fn keys_valid(keys: &[ArrayRef]) -> Result<Option<BooleanArray>> {
    let mut valid: Option<BooleanArray> = None;
    for k in keys.iter().filter(|k| k.null_count() > 0) {
        let v = is_not_null(k)?;
        valid = Some(match valid {
            None => v,
            Some(acc) => and(&acc, &v)?,
        });
    }
    Ok(valid)
}

/// The schema a join condition reads: the left side's columns, then the right's, all nullable
/// (outer joins pad with nulls).
pub(crate) fn paired_schema(left: &Schema, right: &Schema) -> SchemaRef {
    let fields: Vec<_> = left
        .fields()
        .iter()
        .chain(right.fields())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// A join side's key columns over `batch`, cast to the key types both sides share, so equal
/// keys intern to equal groups.
pub(crate) fn join_keys(
    keys: &[Arc<dyn PhysicalExpr>],
    key_schema: &Schema,
    batch: &RecordBatch,
) -> Result<Vec<ArrayRef>> {
    if keys.len() != key_schema.fields().len() {
        return Err(Error::internal("join sides have different key counts"));
    }
    keys.iter()
        .zip(key_schema.fields())
        .map(|(k, field)| {
            let v = evaluate(k, batch)?;
            if v.data_type() == field.data_type() {
                Ok(v)
            } else {
                Ok(cast(&v, field.data_type())?)
            }
        })
        .collect()
}

/// The key names of a join, for `describe`.
pub(crate) fn key_names(key_schema: &Schema) -> Vec<&str> {
    key_schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect()
}
