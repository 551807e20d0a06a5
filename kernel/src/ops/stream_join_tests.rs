//! The stream join: pairs in either arrival order, null keys, the extra condition, and expiry.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion_expr::Operator as SqlOp;
use datafusion_physical_expr::expressions::{BinaryExpr, Column};
use datafusion_physical_expr::PhysicalExpr;

use super::*;
use crate::metrics::JobMetrics;
use crate::operator::{OperatorContext, OperatorFactory, Output};
use crate::types::{Message, Watermark};

#[derive(Default)]
struct Collect(Vec<RecordBatch>, Vec<i64>);

impl Output for Collect {
    fn emit(&mut self, msg: Message) -> Result<()> {
        match msg {
            Message::Batch(b) => self.0.push(b),
            Message::Watermark(Watermark::EventTime(t)) => self.1.push(t),
            _ => {}
        }
        Ok(())
    }
}

/// (key, time) rows on both sides.
fn side_schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}t"), DataType::Int64, true),
    ]))
}

fn col(name: &str, i: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(name, i))
}

/// Left ⋈ right on `lk = rk`, optionally with `lt <= rt`, optionally with left expiry.
fn factory(condition: bool, expiry: Option<Expiry>) -> StreamJoinFactory {
    let (l, r) = (side_schema("l"), side_schema("r"));
    let output: SchemaRef = Arc::new(Schema::new(
        l.fields()
            .iter()
            .chain(r.fields())
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let filter = condition.then(|| {
        Arc::new(BinaryExpr::new(col("lt", 1), SqlOp::LtEq, col("rt", 3))) as Arc<dyn PhysicalExpr>
    });
    StreamJoinFactory {
        join_type: RegularJoinType::Inner,
        left: StreamJoinSide {
            keys: vec![col("lk", 0)],
            schema: l,
            expiry,
        },
        right: StreamJoinSide {
            keys: vec![col("rk", 0)],
            schema: r.clone(),
            expiry: None,
        },
        key_schema: Arc::new(Schema::new(vec![Field::new(
            "$key0",
            DataType::Int64,
            true,
        )])),
        filter,
        output,
        watermark_delay: 0,
        state_ttl_ms: None,
    }
}

fn batch(schema: SchemaRef, rows: &[(Option<i64>, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
            Arc::new(rows.iter().map(|r| Some(r.1)).collect::<Int64Array>()),
        ],
    )
    .unwrap()
}

enum Step {
    Left(Vec<(Option<i64>, i64)>),
    Right(Vec<(Option<i64>, i64)>),
    Watermark(i64),
    /// Milliseconds of wall-clock time.
    Pause(u64),
}

/// The joined rows (lk, lt, rk, rt), sorted; none padded with nulls.
fn run(f: &StreamJoinFactory, steps: &[Step]) -> Vec<[i64; 4]> {
    run_padded(f, steps)
        .into_iter()
        .map(|r| r.map(|v| v.expect("no padding")))
        .collect()
}

/// The joined rows (lk, lt, rk, rt), sorted, nulls as `None`.
fn run_padded(f: &StreamJoinFactory, steps: &[Step]) -> Vec<[Option<i64>; 4]> {
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Collect::default();
    for s in steps {
        match s {
            Step::Left(r) => op
                .on_batch(0, batch(f.left.schema.clone(), r), &mut ctx, &mut out)
                .unwrap(),
            Step::Right(r) => op
                .on_batch(1, batch(f.right.schema.clone(), r), &mut ctx, &mut out)
                .unwrap(),
            Step::Watermark(t) => op
                .on_watermark(Watermark::EventTime(*t), &mut ctx, &mut out)
                .unwrap(),
            Step::Pause(ms) => std::thread::sleep(std::time::Duration::from_millis(*ms)),
        }
    }
    op.on_end(&mut ctx, &mut out).unwrap();
    let mut rows = Vec::new();
    for b in &out.0 {
        let c = |i: usize| b.column(i).as_primitive::<Int64Type>().clone();
        let cols = [c(0), c(1), c(2), c(3)];
        for r in 0..b.num_rows() {
            rows.push([0, 1, 2, 3].map(|i| cols[i].is_valid(r).then(|| cols[i].value(r))));
        }
    }
    rows.sort();
    rows
}

#[test]
fn rows_meet_whichever_side_comes_first_and_null_keys_meet_nothing() {
    let f = factory(false, None);
    let got = run(
        &f,
        &[
            Step::Left(vec![(Some(1), 10), (None, 11), (Some(2), 12)]),
            Step::Right(vec![
                (Some(1), 20),
                (Some(1), 21),
                (None, 22),
                (Some(3), 23),
            ]),
            Step::Left(vec![(Some(1), 13), (Some(3), 14)]),
            Step::Right(vec![(Some(2), 24)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            [1, 10, 1, 20],
            [1, 10, 1, 21],
            [1, 13, 1, 20],
            [1, 13, 1, 21],
            [2, 12, 2, 24],
            [3, 14, 3, 23],
        ]
    );
}

#[test]
fn the_condition_filters_the_pairs() {
    let f = factory(true, None);
    let got = run(
        &f,
        &[
            Step::Left(vec![(Some(1), 10), (Some(1), 30)]),
            Step::Right(vec![(Some(1), 20)]),
            Step::Left(vec![(Some(1), 15), (Some(1), 25)]),
        ],
    );
    assert_eq!(got, vec![[1, 10, 1, 20], [1, 15, 1, 20]]);
}

#[test]
fn expired_rows_are_forgotten_and_the_rest_still_meet() {
    // Left rows expire once below watermark − 5.
    let f = factory(
        false,
        Some(Expiry {
            column: 1,
            offset: -5,
        }),
    );
    let mut steps = vec![Step::Left(vec![(Some(1), 0), (Some(2), 1)])];
    // Many batches that expire, to make the groups rebuild.
    for t in 2..40 {
        steps.push(Step::Left(vec![(Some(t), t)]));
        steps.push(Step::Watermark(t));
    }
    // Watermark 39: rows below 34 are gone; 34..39 remain, and one arriving expired is not kept.
    steps.push(Step::Left(vec![(Some(7), 3)]));
    steps.push(Step::Right(vec![
        (Some(1), 100),
        (Some(7), 101),
        (Some(35), 102),
    ]));
    let got = run(&f, &steps);
    assert_eq!(got, vec![[35, 35, 35, 102]]);
    let stored = {
        let mut op = StreamJoin {
            paired: Arc::new(Schema::empty()),
            sides: [
                SideState::new(f.key_schema.clone(), "left", &f.left.schema).unwrap(),
                SideState::new(f.key_schema.clone(), "right", &f.right.schema).unwrap(),
            ],
            f: f.clone(),
            groups: Vec::new(),
            source_of: Vec::new(),
            watermark: None,
            now: 0,
            sweep: None,
        };
        let mut out = Collect::default();
        let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
        for t in 0..40 {
            op.on_batch(
                0,
                batch(f.left.schema.clone(), &[(Some(t), t)]),
                &mut ctx,
                &mut out,
            )
            .unwrap();
            op.on_watermark(Watermark::EventTime(t), &mut ctx, &mut out)
                .unwrap();
        }
        (op.sides[0].live_rows, op.sides[0].keys.len())
    };
    // Rows 34..=39 live; the groups were rebuilt, so they hold about as many keys.
    assert_eq!(stored.0, 6);
    assert!(stored.1 <= 12, "{stored:?}");
}

#[test]
fn an_interval_join_holds_its_watermark_back() {
    let f = StreamJoinFactory {
        watermark_delay: 5,
        ..factory(false, None)
    };
    let mut op = f.create(0, 1).unwrap();
    let mut ctx = OperatorContext::new(0, 1, 128, Arc::new(JobMetrics::default()));
    let mut out = Collect::default();
    for t in [3, 20] {
        op.on_watermark(Watermark::EventTime(t), &mut ctx, &mut out)
            .unwrap();
    }
    assert_eq!(out.1, vec![-2, 15]);
    assert!(f.describe().contains("watermark held back 5 ms"));
}

#[test]
fn rows_past_the_state_ttl_meet_nothing() {
    let steps = |pause| {
        vec![
            Step::Left(vec![(Some(1), 10)]),
            Step::Pause(pause),
            Step::Right(vec![(Some(1), 20)]),
        ]
    };
    let with_ttl = |ttl| StreamJoinFactory {
        state_ttl_ms: Some(ttl),
        ..factory(false, None)
    };
    assert_eq!(run(&with_ttl(3_600_000), &steps(40)), vec![[1, 10, 1, 20]]);
    assert!(run(&with_ttl(10), &steps(40)).is_empty());
}

/// `lk = rk AND lt <= rt`, both sides expiring below the watermark: an interval join.
fn interval(join_type: RegularJoinType) -> StreamJoinFactory {
    let expiry = Some(Expiry {
        column: 1,
        offset: 0,
    });
    let mut f = factory(true, expiry);
    f.right.expiry = expiry;
    f.join_type = join_type;
    f
}

#[test]
fn a_left_interval_join_pads_left_rows_that_expire_unmatched() {
    let got = run_padded(
        &interval(RegularJoinType::Left),
        &[
            // A null key can never match: padded at once.
            Step::Left(vec![(Some(1), 10), (Some(2), 10), (None, 11)]),
            Step::Right(vec![(Some(1), 12), (Some(4), 12)]),
            Step::Watermark(5),
            // 1 met a row; 2 expires unmatched.
            Step::Watermark(20),
            // Below the watermark already: no later right row can meet it.
            Step::Left(vec![(Some(3), 15)]),
            Step::Right(vec![(Some(2), 30)]),
        ],
    );
    assert_eq!(
        got,
        vec![
            [None, Some(11), None, None],
            [Some(1), Some(10), Some(1), Some(12)],
            [Some(2), Some(10), None, None],
            [Some(3), Some(15), None, None],
        ]
    );
    assert!(interval(RegularJoinType::Left)
        .describe()
        .starts_with("left join"));
}

#[test]
fn a_full_interval_join_pads_both_sides_by_the_end() {
    let got = run_padded(
        &interval(RegularJoinType::Full),
        &[
            Step::Left(vec![(Some(1), 10), (Some(2), 10)]),
            Step::Right(vec![(Some(1), 12), (Some(5), 1), (Some(2), 3)]),
            // The end of the input: every row expires.
            Step::Watermark(i64::MAX),
        ],
    );
    // (2, 10) and (2, 3) share a key but fail lt <= rt: both padded.
    assert_eq!(
        got,
        vec![
            [None, None, Some(2), Some(3)],
            [None, None, Some(5), Some(1)],
            [Some(1), Some(10), Some(1), Some(12)],
            [Some(2), Some(10), None, None],
        ]
    );
}

#[test]
fn a_restored_stream_join_continues_as_if_it_had_not_stopped() {
    use crate::ops::test_output::{restores_as_if_uninterrupted, Step};
    let (l, r) = (side_schema("l"), side_schema("r"));
    let left = |rows: &[(Option<i64>, i64)]| Step::Batch(0, batch(l.clone(), rows));
    let right = |rows: &[(Option<i64>, i64)]| Step::Batch(1, batch(r.clone(), rows));
    let steps = || {
        vec![
            vec![
                left(&[(Some(1), 10), (Some(2), 20), (None, 5)]),
                right(&[(Some(1), 11)]),
            ],
            vec![
                right(&[(Some(2), 21), (Some(3), 30)]),
                left(&[(Some(6), 35)]),
                Step::Watermark(15),
            ],
            // (6, 35) was checkpointed unmatched and meets a row now.
            vec![
                left(&[(Some(3), 31), (Some(1), 16)]),
                right(&[(Some(1), 17), (Some(6), 36)]),
            ],
            // Left rows below watermark + 1 expire: (1, 10) meets no later row.
            vec![Step::Watermark(25), right(&[(Some(1), 40), (Some(2), 41)])],
            // Everything expires at the end: (5, 46) never met a row, (6, 35) did.
            vec![
                left(&[(Some(2), 42), (Some(4), 43), (Some(5), 46)]),
                right(&[(Some(3), 44), (Some(4), 45)]),
                Step::Watermark(100),
            ],
        ]
    };
    // Inner, with left rows expiring by the watermark.
    let expiring = factory(
        false,
        Some(Expiry {
            column: 1,
            offset: 1,
        }),
    );
    restores_as_if_uninterrupted(|s, p| expiring.create(s, p).unwrap(), &steps());
    // Left outer, both sides expiring: unmatched left rows are sent padded when they expire,
    // so their match flags go through the checkpoint.
    let outer = StreamJoinFactory {
        join_type: RegularJoinType::Left,
        right: StreamJoinSide {
            expiry: Some(Expiry {
                column: 1,
                offset: 1,
            }),
            ..factory(false, None).right
        },
        ..factory(
            false,
            Some(Expiry {
                column: 1,
                offset: 1,
            }),
        )
    };
    restores_as_if_uninterrupted(|s, p| outer.create(s, p).unwrap(), &steps());
}
