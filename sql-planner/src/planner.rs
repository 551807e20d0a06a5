//! Plans a whole script into one job: every `INSERT INTO` (and bare `SELECT`) of the script
//! becomes a pipeline of the same job graph, as a Flink statement set.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion_common::DataFusionError;
use datafusion_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimizer::{Optimizer, OptimizerContext};
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use kernel::config::JobConfig;
use kernel::connector::{parse_duration_ms, Connector, ConnectorLookup};
use kernel::graph::JobGraph;
use kernel::keys::default_max_parallelism;
use kernel::ops::group_agg::MiniBatch;
use sqlparser::ast::Statement;

use crate::catalog::Catalog;
use crate::error::{Location, PlanError};
use crate::functions::{udf_for_class, KNOWN_UDF_CLASSES};
use crate::lower::Lowering;
use crate::script::{parse_script, FlinkStatement};

/// What the caller decides about a job besides its SQL.
#[derive(Clone)]
pub struct PlanOptions {
    /// Default parallelism of every operator (Flink's `parallelism.default`).
    pub parallelism: usize,
    /// `key=value` settings that apply before the script's own `SET`s.
    pub settings: Vec<(String, String)>,
    /// The connectors tables may name.
    pub connectors: Arc<dyn ConnectorLookup>,
    /// When set, every INSERT target and bare SELECT is written through this connector
    /// instead of its own, with the query's columns (the CLI's `--materialize`, which
    /// applies the changelog and writes the final table at the end).
    pub sinks_to: Option<Arc<dyn Connector>>,
}

/// A planned job: its graph, the effective settings, and the runtime settings they make.
pub struct PlannedJob {
    pub graph: JobGraph,
    pub settings: BTreeMap<String, String>,
    pub config: JobConfig,
}

/// The runtime settings of `settings`: `table.exec.source.idle-timeout` (Flink's default, 0,
/// never declares a source idle).
fn job_config(settings: &BTreeMap<String, String>) -> Result<JobConfig, PlanError> {
    let mut config = JobConfig::default();
    if let Some(v) = settings.get(IDLE_TIMEOUT) {
        let ms = parse_duration_ms(v).ok_or_else(|| {
            PlanError::at(
                format!("'{IDLE_TIMEOUT}' = '{v}' is not a duration (as '10 s' or '500 ms')"),
                Location::default(),
            )
        })?;
        config.source_idle_timeout = (ms > 0).then(|| Duration::from_millis(ms));
    }
    config.state_memory_budget = memory_setting(settings, STATE_MEMORY_BUDGET)?;
    config.state_blob_min_bytes = setting(
        settings,
        STATE_BLOB_MIN_SIZE,
        parse_memory_size,
        "a memory size (as '1 kb', or '0' to keep every value in the run files)",
    )?;
    // Without a directory, checkpoints go under the system's temp directory: enough for
    // restarts within the run, as Flink's JobManager storage is.
    let temp_dir = || {
        std::env::temp_dir()
            .join("eddy-checkpoints")
            .display()
            .to_string()
    };
    config.checkpointing = crate::checkpoint_settings::checkpoint_config(settings, temp_dir)?;
    // As Flink's: the default restart strategy follows periodic checkpointing.
    let periodic = config
        .checkpointing
        .as_ref()
        .is_some_and(|c| c.interval.is_some());
    config.restart = crate::checkpoint_settings::restart_strategy(settings, periodic)?;
    config.recovery = crate::checkpoint_settings::recovery_settings(settings)?;
    config.fail_after_checkpoint =
        positive_setting(settings, FAIL_AFTER_CHECKPOINT)?.map(|n| n as u64);
    Ok(config)
}

/// Memory each state table of each subtask keeps before writing run files to local disk.
/// Set, it also moves the rows of joins whose state only grows into state tables (see
/// `Lowering::stream_join`).
const STATE_MEMORY_BUDGET: &str = "state.backend.gemini.memory-budget";
/// Values at least this long are kept in blob files, out of the run files that compactions
/// rewrite; '0' keeps them all in the run files.
const STATE_BLOB_MIN_SIZE: &str = "state.backend.gemini.blob-min-size";

/// A memory size as Flink writes one: a whole number and an optional unit, `b`, `k`/`kb`,
/// `m`/`mb`, `g`/`gb` or `t`/`tb` (powers of 1024, as Flink's `MemorySize`), in any case,
/// with or without a space.
fn parse_memory_size(v: &str) -> Option<usize> {
    let v = v.trim();
    let digits = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: usize = v[..digits].parse().ok()?;
    let shift = match v[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return None,
    };
    n.checked_mul(1usize << shift)
}

/// The setting `key` as a positive memory size in bytes, if set.
fn memory_setting(
    settings: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<usize>, PlanError> {
    let positive = |v: &str| parse_memory_size(v).filter(|&bytes| bytes > 0);
    setting(
        settings,
        key,
        positive,
        "a memory size (as '64 mb' or '1 gb')",
    )
}

const IDLE_TIMEOUT: &str = "table.exec.source.idle-timeout";
/// A test knob: the job's first attempt fails after publishing this checkpoint.
const FAIL_AFTER_CHECKPOINT: &str = "eddy.test.fail-after-checkpoint";
/// The number of key groups: the most subtasks any keyed operator can ever run as, also
/// after a restore from a checkpoint.
const MAX_PARALLELISM: &str = "pipeline.max-parallelism";
/// Groups a window aggregation combines in memory before writing them to its state table.
const WINDOW_BUFFER: &str = "table.exec.window-agg.buffer-size-limit";

/// How long state lives unwritten; Flink's default, 0, keeps it forever.
const STATE_TTL: &str = "table.exec.state.ttl";

const MINI_BATCH: &str = "table.exec.mini-batch.enabled";
const MINI_BATCH_LATENCY: &str = "table.exec.mini-batch.allow-latency";
const MINI_BATCH_SIZE: &str = "table.exec.mini-batch.size";

/// Flink's mini-batch settings: off by default; when on, both the latency and the size must
/// be positive, as Flink requires.
fn mini_batch(settings: &BTreeMap<String, String>) -> Result<Option<MiniBatch>, PlanError> {
    let enabled = bool_setting(settings, MINI_BATCH)?.unwrap_or(false);
    if !enabled {
        return Ok(None);
    }
    let latency = duration_setting(settings, MINI_BATCH_LATENCY)?.unwrap_or(0);
    if latency <= 0 {
        return Err(PlanError::at(
            format!("'{MINI_BATCH}' is true, so '{MINI_BATCH_LATENCY}' must be set to a positive duration (as '2 s')"),
            Location::default(),
        ));
    }
    let Some(size) = positive_setting(settings, MINI_BATCH_SIZE)? else {
        return Err(PlanError::at(
            format!("'{MINI_BATCH}' is true, so '{MINI_BATCH_SIZE}' must be set to a positive number of rows (as '5000')"),
            Location::default(),
        ));
    };
    Ok(Some(MiniBatch {
        size,
        latency: Duration::from_millis(latency as u64),
    }))
}

const SPLIT_DISTINCT: &str = "table.optimizer.distinct-agg.split.enabled";
const SPLIT_BUCKETS: &str = "table.optimizer.distinct-agg.split.bucket-num";

/// The buckets of split distinct aggregation when it is on (Flink's default: 1024).
fn split_distinct(settings: &BTreeMap<String, String>) -> Result<Option<u32>, PlanError> {
    let buckets = positive_setting(settings, SPLIT_BUCKETS)?.unwrap_or(1024);
    if !bool_setting(settings, SPLIT_DISTINCT)?.unwrap_or(false) {
        return Ok(None);
    }
    u32::try_from(buckets).map(Some).map_err(|_| {
        PlanError::at(
            format!("'{SPLIT_BUCKETS}' = '{buckets}' is too large"),
            Location::default(),
        )
    })
}

/// The setting `key` read by `parse`, if set; an error says it is not `expected`.
pub(crate) fn setting<T>(
    settings: &BTreeMap<String, String>,
    key: &str,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, PlanError> {
    let Some(v) = settings.get(key) else {
        return Ok(None);
    };
    match parse(v) {
        Some(t) => Ok(Some(t)),
        None => Err(PlanError::at(
            format!("'{key}' = '{v}' is not {expected}"),
            Location::default(),
        )),
    }
}

/// The setting `key` as `true` or `false`, if set.
pub(crate) fn bool_setting(
    settings: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<bool>, PlanError> {
    let parse = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    setting(settings, key, parse, "'true' or 'false'")
}

/// The setting `key` as a duration in milliseconds, if set.
pub(crate) fn duration_setting(
    settings: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<i64>, PlanError> {
    let parse = |v: &str| parse_duration_ms(v).and_then(|ms| i64::try_from(ms).ok());
    setting(
        settings,
        key,
        parse,
        "a duration (as '1 h', '10 s' or '500 ms')",
    )
}

/// The setting `key` as a positive whole number, if set.
pub(crate) fn positive_setting(
    settings: &BTreeMap<String, String>,
    key: &str,
) -> Result<Option<usize>, PlanError> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    setting(settings, key, parse, "a positive whole number")
}

fn parser_options() -> ParserOptions {
    let mut o = ParserOptions::new();
    o.parse_float_as_decimal = true;
    o.enable_ident_normalization = false;
    o.collect_spans = true;
    o.map_string_types_to_utf8view = false;
    o
}

/// A DataFusion error as a located plan error; the span, when DataFusion has one, wins.
fn df_error(e: DataFusionError, at: Location) -> PlanError {
    let loc = e
        .diagnostic()
        .and_then(|d| d.span)
        .filter(|s| s.start.line > 0)
        .map(|s| Location {
            line: s.start.line,
            column: s.start.column,
        })
        .unwrap_or(at);
    let msg = e.find_root().strip_backtrace();
    let msg = msg
        .strip_prefix("Error during planning: ")
        .or_else(|| msg.strip_prefix("This feature is not implemented: "))
        .unwrap_or(&msg)
        .to_string();
    if let Some(short) = window_function(&msg) {
        return PlanError::at(short, loc);
    }
    match crate::error::unsupported_construct(&msg) {
        Some((short, at)) => PlanError::at(short, at.unwrap_or(loc)),
        None => PlanError::at(msg, loc),
    }
}

/// DataFusion's "Invalid function" for a ranking or offset window function eddy has not
/// registered yet, said as what it is.
fn window_function(msg: &str) -> Option<String> {
    const WINDOW_FUNCTIONS: [&str; 7] = [
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "ntile",
        "lag",
        "lead",
    ];
    let name = msg.strip_prefix("Invalid function '")?.split('\'').next()?;
    WINDOW_FUNCTIONS.contains(&name).then(|| {
        format!(
            "{}() OVER (…) (Top-N, deduplication, ranking) is not supported yet",
            name.to_uppercase()
        )
    })
}

fn optimize(plan: LogicalPlan, catalog: &Catalog) -> Result<LogicalPlan, DataFusionError> {
    let analyzed = Analyzer::new().execute_and_check(plan, &catalog.options, |_, _| {})?;
    let ctx = OptimizerContext::new_with_config_options(Arc::new(catalog.options.clone()));
    Optimizer::new().optimize(analyzed, &ctx, |_, _| {})
}

/// Plans a query or INSERT with Flink's naming rules applied first.
fn plan_statement(
    catalog: &Catalog,
    mut stmt: Statement,
    at: Location,
) -> Result<LogicalPlan, PlanError> {
    crate::rewrite::flink_semantics(&mut stmt).map_err(|e| PlanError::at(e, at))?;
    SqlToRel::new_with_options(catalog, parser_options())
        .sql_statement_to_plan(stmt)
        .map_err(|e| df_error(e, at))
}

/// A stable hash of a statement's text (FNV-1a), so operator uids survive edits elsewhere in
/// the script.
fn text_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Refuses a job whose sink writes where the job reads (the same path, or one inside the
/// other): it would read its own output, and every run would add to the last one's.
fn refuse_writing_what_is_read(
    reads: &[(String, PathBuf)],
    writes: &[((String, PathBuf), Location)],
) -> Result<(), PlanError> {
    for ((sink, written), at) in writes {
        let w = normalized(written);
        for (source, read) in reads {
            let r = normalized(read);
            if w.starts_with(&r) || r.starts_with(&w) {
                return Err(PlanError::at(
                    format!(
                        "table '{sink}' writes to '{}', where table '{source}' of the same job \
                         reads ('{}'): the job would read its own output; write somewhere else",
                        written.display(),
                        read.display()
                    ),
                    *at,
                ));
            }
        }
    }
    Ok(())
}

/// `path` absolute and without `.`, `..` or symbolic links where it exists, so that two
/// spellings of one place compare equal.
fn normalized(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut clean = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                clean.pop();
            }
            other => clean.push(other),
        }
    }
    // Resolve links through the longest prefix that exists.
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return clean,
        }
    }
    let mut resolved = std::fs::canonicalize(existing).unwrap_or_else(|_| existing.to_path_buf());
    resolved.extend(rest.iter().rev());
    resolved
}

/// Parses and plans `sql`.
pub fn plan_script(sql: &str, opts: &PlanOptions) -> Result<PlannedJob, PlanError> {
    let statements = parse_script(sql)?;
    let mut catalog = Catalog::new();
    let mut settings: BTreeMap<String, String> = opts.settings.iter().cloned().collect();
    // Optimized plans of INSERTs (true) and bare SELECTs (false), with where they stand.
    let mut pipelines: Vec<(LogicalPlan, bool, Location, u64)> = Vec::new();

    for located in &statements {
        let at = located.location;
        match &located.statement {
            FlinkStatement::CreateTable(def) => {
                let table = {
                    let planner = SqlToRel::new_with_options(&catalog, parser_options());
                    let plan_expr =
                        |e: &sqlparser::ast::Expr, schema: &datafusion_common::DFSchema| {
                            planner.sql_to_expr(e.clone(), schema, &mut PlannerContext::new())
                        };
                    catalog
                        .table_from_def(def, opts.connectors.as_ref(), &plan_expr)
                        .map_err(|e| PlanError::from_kernel(e, at))?
                };
                if let Some(t) = table {
                    catalog.tables.insert(def.name.clone(), Arc::new(t));
                }
            }
            FlinkStatement::CreateView {
                name,
                columns,
                query,
                if_not_exists,
            } => {
                let plan = {
                    let plan = plan_statement(&catalog, Statement::Query(query.clone()), at)?;
                    if columns.is_empty() {
                        plan
                    } else {
                        if columns.len() != plan.schema().fields().len() {
                            return Err(PlanError::at(
                                format!(
                                    "view '{name}' names {} columns but its query has {}",
                                    columns.len(),
                                    plan.schema().fields().len()
                                ),
                                at,
                            ));
                        }
                        let exprs: Vec<_> = plan
                            .schema()
                            .columns()
                            .into_iter()
                            .zip(columns)
                            .map(|(c, n)| datafusion_expr::Expr::Column(c).alias(n))
                            .collect();
                        LogicalPlanBuilder::from(plan)
                            .project(exprs)
                            .and_then(|b| b.build())
                            .map_err(|e| df_error(e, at))?
                    }
                };
                catalog
                    .add_view(name, plan, *if_not_exists)
                    .map_err(|e| PlanError::from_kernel(e, at))?;
            }
            FlinkStatement::CreateFunction {
                name,
                class,
                if_not_exists,
            } => {
                if catalog.functions.contains_key(name) {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(PlanError::at(
                        format!("function '{name}' already exists"),
                        at,
                    ));
                }
                let Some(udf) = udf_for_class(class, name) else {
                    return Err(PlanError::at(
                        format!(
                            "function class '{class}' is not available: eddy runs no JVM; built-in classes: {}",
                            KNOWN_UDF_CLASSES.join(", ")
                        ),
                        at,
                    ));
                };
                catalog.functions.insert(name.clone(), udf);
            }
            FlinkStatement::Set { key, value } => {
                settings.insert(key.clone(), value.clone());
            }
            FlinkStatement::Insert(stmt) => {
                let plan = plan_statement(&catalog, stmt.as_ref().clone(), at)?;
                pipelines.push((
                    optimize(plan, &catalog).map_err(|e| df_error(e, at))?,
                    true,
                    at,
                    text_hash(&located.text),
                ));
            }
            FlinkStatement::Select(query) => {
                let plan = plan_statement(&catalog, Statement::Query(query.clone()), at)?;
                pipelines.push((
                    optimize(plan, &catalog).map_err(|e| df_error(e, at))?,
                    false,
                    at,
                    text_hash(&located.text),
                ));
            }
        }
    }

    let parallelism =
        positive_setting(&settings, "parallelism.default")?.unwrap_or(opts.parallelism);
    let window_buffer_groups = positive_setting(&settings, WINDOW_BUFFER)?;
    let state_ttl_ms = duration_setting(&settings, STATE_TTL)?.filter(|&ms| ms > 0);
    let mini_batch = mini_batch(&settings)?;
    let split_distinct_buckets = split_distinct(&settings)?;
    let mut config = job_config(&settings)?;
    // Checkpoints, savepoints or a restore: the plan must not depend on the parallelism.
    let keeps_state = config.checkpointing.is_some() || config.recovery.is_some();
    if pipelines.is_empty() {
        return Err(PlanError::at(
            "the script has no INSERT INTO or SELECT statement: nothing to run",
            Location::default(),
        ));
    }
    let mut graph = JobGraph::default();
    let mut reads: Vec<(String, PathBuf)> = Vec::new();
    let mut writes: Vec<((String, PathBuf), Location)> = Vec::new();
    for (plan, is_insert, at, hash) in &pipelines {
        let mut lowering = Lowering::new(&mut graph, parallelism, *hash);
        if let Some(n) = window_buffer_groups {
            lowering.window_buffer_groups = n;
        }
        lowering.state_ttl_ms = state_ttl_ms;
        lowering.joins_in_state_tables = settings.contains_key(STATE_MEMORY_BUDGET);
        lowering.parallelism_independent = keeps_state;
        lowering.mini_batch = mini_batch;
        lowering.split_distinct_buckets = split_distinct_buckets;
        lowering.sink_connector = opts.sinks_to.clone();
        let result = if *is_insert {
            lowering.insert(plan)
        } else {
            lowering.select(plan, opts.connectors.as_ref())
        };
        result.map_err(|e| PlanError::from_kernel(e, *at))?;
        reads.append(&mut lowering.reads);
        writes.extend(lowering.writes.drain(..).map(|w| (w, *at)));
    }
    refuse_writing_what_is_read(&reads, &writes)?;
    graph.reuse_duplicates();
    // Its upper bound is checked with the parallelism of every node, just below.
    config.max_parallelism = positive_setting(&settings, MAX_PARALLELISM)?
        .unwrap_or_else(|| default_max_parallelism(graph.max_node_parallelism()));
    graph
        .check_max_parallelism(config.max_parallelism)
        .map_err(|e| PlanError::from_kernel(e, Location::default()))?;
    Ok(PlannedJob {
        graph,
        settings,
        config,
    })
}
