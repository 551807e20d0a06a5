//! What keyed operators' state tables share: the subtask's state table and the key
//! groups of rows.
//!
//! A row's key group is that of the hash the exchange routed it by, so a subtask only writes
//! key groups of its own range and state moves with its key groups on a rescale. Without
//! hashed columns (one subtask, or a keyless aggregate) rows go to the range's first group.

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use gemini_state::{KeyGroup, KeyGroupRange, StateTable, TableOptions, TieredTable};

use crate::keys;
use crate::operator::OperatorContext;
use crate::{Error, Result};

/// The subtask's table `name` in `slot`, made on first use over the key groups of `ctx`'s
/// subtask.
pub(crate) fn subtask_table<'a>(
    slot: &'a mut Option<Box<dyn StateTable>>,
    name: &str,
    ctx: &OperatorContext,
) -> Result<&'a mut Box<dyn StateTable>> {
    if slot.is_none() {
        *slot = Some(subtask_table_with(ctx, name, TableOptions::default())?);
    }
    Ok(slot.as_mut().expect("made above"))
}

/// A new table `name` over the key groups of `ctx`'s subtask, with `options` (a TTL, say)
/// and the job's memory budget and blob threshold. When the job takes checkpoints, the
/// table writes its snapshots to the job's checkpoint location under a name stable across
/// runs ([`OperatorContext::table_name`]) and leaves releasing them to the runtime.
pub(crate) fn subtask_table_with(
    ctx: &OperatorContext,
    name: &str,
    mut options: TableOptions,
) -> Result<Box<dyn StateTable>> {
    if let Some(store) = &ctx.checkpoints {
        options.checkpoints = Some(store.clone());
        options.name = Some(ctx.table_name(name));
        options.retained_checkpoints = 0;
    }
    if let Some(budget) = ctx.state_memory_budget {
        options.memory_budget = budget;
    }
    if let Some(min_bytes) = ctx.state_blob_min_bytes {
        options.blob_min_bytes = (min_bytes > 0).then_some(min_bytes);
    }
    let range = keys::key_group_range(ctx.max_parallelism, ctx.parallelism, ctx.subtask)?;
    Ok(Box::new(TieredTable::new(range, options)?))
}

/// The key group of each of `rows` rows by the hash of `hashed` (the columns the exchange
/// hashed; empty for the range's first group). The exchange routed them here by the same
/// rule, so they fall in `range`; the table checks it as it writes.
pub(crate) fn key_groups(
    hashed: &[ArrayRef],
    rows: usize,
    range: KeyGroupRange,
    ctx: &OperatorContext,
    hashes: &mut Vec<u64>,
) -> Result<Vec<KeyGroup>> {
    keys::key_groups_of_rows(hashed, rows, range, ctx.max_parallelism, hashes)
}

/// `columns` cast to `types`: the row format gives dictionary columns back as their values.
pub(crate) fn cast_back(columns: Vec<ArrayRef>, types: &[DataType]) -> Result<Vec<ArrayRef>> {
    columns
        .into_iter()
        .zip(types)
        .map(|(c, t)| {
            if c.data_type() == t {
                Ok(c)
            } else {
                Ok(cast(&c, t)?)
            }
        })
        .collect()
}

/// Column types as a checkpoint keeps them: `DataType`'s text form.
pub(crate) fn type_names(types: &[DataType]) -> Vec<String> {
    types.iter().map(|t| t.to_string()).collect()
}

/// The types [`type_names`] wrote.
pub(crate) fn parse_type_names(names: &[String]) -> Result<Vec<DataType>> {
    names
        .iter()
        .map(|t| {
            t.parse::<DataType>().map_err(|e| {
                Error::user(format!(
                    "a checkpointed column type '{t}' does not parse: {e}"
                ))
            })
        })
        .collect()
}

/// A converter to and from the row format for columns of `types`; `None` for no columns.
pub(crate) fn row_converter<'a>(
    types: impl IntoIterator<Item = &'a DataType>,
) -> Result<Option<RowConverter>> {
    let fields: Vec<SortField> = types
        .into_iter()
        .map(|t| SortField::new(t.clone()))
        .collect();
    Ok(if fields.is_empty() {
        None
    } else {
        Some(RowConverter::new(fields)?)
    })
}

/// The eight bytes of a time (or a slice end), ordered as the times are.
pub(crate) fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// Appends `bytes` with its length in front.
pub(crate) fn put_record(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// The next length-prefixed record of `buf` at `*at`, moving `*at` past it.
pub(crate) fn next_record<'a>(buf: &'a [u8], at: &mut usize) -> Result<&'a [u8]> {
    let corrupt = || Error::internal("a window state entry is cut short");
    let len: [u8; 4] = buf
        .get(*at..*at + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(corrupt)?;
    let start = *at + 4;
    let end = start + u32::from_le_bytes(len) as usize;
    *at = end;
    buf.get(start..end).ok_or_else(corrupt)
}
