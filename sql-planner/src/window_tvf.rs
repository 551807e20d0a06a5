//! Window table functions: `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL …))`, and `HOP`,
//! `CUMULATE`, `SESSION` alike.
//!
//! The front end turns the call into a table function whose arguments DataFusion can plan
//! (`rewrite::window_tvf_call`); the catalog answers it with [`window_tvf_source`]: a logical
//! node over the table's plan that adds `window_start`, `window_end` and `window_time`. The
//! lowering fuses the node with the `GROUP BY window_start, window_end` above it into a window
//! aggregation (`lower_window.rs`).

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, Schema, TimeUnit};
use datafusion_common::{plan_err, Column, DFSchema, DFSchemaRef, Result, ScalarValue};
use datafusion_expr::{
    Expr, Extension, LogicalPlan, LogicalPlanBuilder, TableSource, UserDefinedLogicalNodeCore,
};
use kernel::ops::window::{WindowKind, WindowSpec};

use crate::catalog::ViewSource;

/// The columns a window table function adds, in order.
pub(crate) const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// The window functions eddy plans, with their parameters in Flink's positional order.
pub(crate) fn parameters(function: &str) -> Option<&'static [&'static str]> {
    match function.to_ascii_uppercase().as_str() {
        "TUMBLE" => Some(&["DATA", "TIMECOL", "SIZE", "OFFSET"]),
        "HOP" => Some(&["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"]),
        "CUMULATE" => Some(&["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"]),
        "SESSION" => Some(&["DATA", "TIMECOL", "GAP"]),
        _ => None,
    }
}

/// The windows a window table function assigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TvfWindows {
    /// TUMBLE, HOP, CUMULATE: fixed windows, aggregated by slices.
    Sliced(WindowSpec),
    /// SESSION: windows per group key that end `gap` ms after their last row.
    Session { gap: i64 },
}

/// A window table function over `input`: the input's columns, then the window columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct WindowTvf {
    pub input: LogicalPlan,
    /// The time attribute the windows are assigned by.
    pub time: Column,
    pub windows: TvfWindows,
    schema: DFSchemaRef,
}

impl PartialOrd for WindowTvf {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.input.partial_cmp(&other.input)
    }
}

impl WindowTvf {
    pub fn new(input: LogicalPlan, time: Column, windows: TvfWindows) -> Result<Self> {
        let (_, time_field) = input.schema().qualified_field_from_column(&time)?;
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let mut fields: Vec<(Option<datafusion_common::TableReference>, Arc<Field>)> = input
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), f.clone()))
            .collect();
        for (name, data_type) in
            WINDOW_COLUMNS
                .iter()
                .zip([ts.clone(), ts, time_field.data_type().clone()])
        {
            fields.push((None, Arc::new(Field::new(*name, data_type, false))));
        }
        let schema = Arc::new(DFSchema::new_with_metadata(fields, Default::default())?);
        Ok(WindowTvf {
            input,
            time,
            windows,
            schema,
        })
    }

    /// How many columns come from the input (the window columns follow).
    pub fn input_width(&self) -> usize {
        self.input.schema().fields().len()
    }
}

impl UserDefinedLogicalNodeCore for WindowTvf {
    fn name(&self) -> &str {
        "WindowTableFunction"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        // A filter on the input's columns means the same before the windows are assigned.
        WINDOW_COLUMNS.iter().map(|c| c.to_string()).collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.windows {
            TvfWindows::Sliced(spec) => write!(
                f,
                "WindowTableFunction: {:?} offset {} ms on {}",
                spec.kind, spec.offset, self.time
            ),
            TvfWindows::Session { gap } => {
                write!(
                    f,
                    "WindowTableFunction: Session gap {gap} ms on {}",
                    self.time
                )
            }
        }
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        WindowTvf::new(inputs.swap_remove(0), self.time.clone(), self.windows)
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let width = self.input_width();
        let time = self.input.schema().index_of_column(&self.time).ok()?;
        let mut needed: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|&i| i < width)
            .collect();
        if !needed.contains(&time) {
            needed.push(time);
        }
        needed.sort_unstable();
        Some(vec![needed])
    }
}

/// A string argument (`TABLE t` and `DESCRIPTOR(c)` arrive as strings).
fn name_arg(function: &str, what: &str, e: &Expr) -> Result<String> {
    match e {
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => Ok(s.clone()),
        other => plan_err!("{function}: the {what} argument must be a name, got {other}"),
    }
}

/// An interval argument in milliseconds.
fn millis_arg(function: &str, what: &str, e: &Expr) -> Result<i64> {
    let ms = match e {
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) => {
            let IntervalMonthDayNano {
                months,
                days,
                nanoseconds,
            } = *v;
            if months != 0 {
                return plan_err!(
                    "{function}: the {what} must be a day-time interval, not months or years"
                );
            }
            days as i64 * 86_400_000 + nanoseconds / 1_000_000
        }
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => {
            v.days as i64 * 86_400_000 + v.milliseconds as i64
        }
        other => {
            return plan_err!("{function}: the {what} must be an INTERVAL literal, got {other}")
        }
    };
    Ok(ms)
}

/// The table source of a window table function call: `args` as `rewrite::window_tvf_call`
/// left them (table name, time column name, intervals). `table` resolves the table or view.
pub(crate) fn window_tvf_source(
    function: &str,
    args: &[Expr],
    table: &dyn Fn(&str) -> Result<Arc<dyn TableSource>>,
) -> Result<Arc<dyn TableSource>> {
    let name = function.to_ascii_uppercase();
    let Some(params) = parameters(&name) else {
        return plan_err!("unknown table function '{function}'");
    };
    let required = params.len() - 1; // OFFSET is optional
    if args.len() < required || args.len() > params.len() {
        return plan_err!(
            "{name} takes {} arguments ({}), got {}",
            required,
            params[..required].join(", "),
            args.len()
        );
    }
    let data = name_arg(&name, "DATA", &args[0])?;
    let timecol = name_arg(&name, "TIMECOL", &args[1])?;
    let source = table(&data)?;
    let input = LogicalPlanBuilder::scan(data.as_str(), source, None)?.build()?;
    let time = match input
        .schema()
        .qualified_field_with_unqualified_name(&timecol)
    {
        Ok((q, f)) => {
            if !matches!(f.data_type(), DataType::Timestamp(..)) {
                return plan_err!(
                    "{name}: the time column '{timecol}' must be a timestamp, but it is {}",
                    f.data_type()
                );
            }
            Column::new(q.cloned(), f.name())
        }
        Err(_) => return plan_err!("{name}: '{data}' has no column '{timecol}'"),
    };
    let interval = |i: usize| millis_arg(&name, &params[i].to_ascii_lowercase(), &args[i]);
    let windows = if name == "SESSION" {
        let gap = interval(2)?;
        if gap <= 0 {
            return plan_err!("SESSION: the gap must be positive, got {gap} ms");
        }
        TvfWindows::Session { gap }
    } else {
        TvfWindows::Sliced(sliced(&name, required, args, &interval)?)
    };
    let node = WindowTvf::new(input, time, windows)?;
    let plan = LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    });
    let schema = Arc::new(Schema::clone(plan.schema().as_arrow()));
    Ok(Arc::new(ViewSource { plan, schema }))
}

/// The spec of a TUMBLE, HOP or CUMULATE call.
fn sliced(
    name: &str,
    required: usize,
    args: &[Expr],
    interval: &dyn Fn(usize) -> Result<i64>,
) -> Result<WindowSpec> {
    let kind = match name {
        "TUMBLE" => WindowKind::Tumble { size: interval(2)? },
        "HOP" => WindowKind::Hop {
            slide: interval(2)?,
            size: interval(3)?,
        },
        _ => WindowKind::Cumulate {
            step: interval(2)?,
            size: interval(3)?,
        },
    };
    let offset = if args.len() > required {
        interval(required)?
    } else {
        0
    };
    let spec = WindowSpec { kind, offset };
    if let Err(e) = spec.validate() {
        return plan_err!("{name}: {e}");
    }
    Ok(spec)
}
