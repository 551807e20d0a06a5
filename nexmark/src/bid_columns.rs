//! The `bid` column of a batch, built field by field.
//!
//! Bids are 46 of every 50 events and nearly all of the generator's work. Each bid field takes
//! a fixed draw of its event's stream ([`EventStream`]), so the coin flips between a hot and a
//! random auction, bidder or channel become selects instead of branches the CPU mispredicts
//! half the time, and the strings are copied from the tables in fixed-size blocks.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StructArray, TimestampMillisecondArray};
use arrow::buffer::{NullBuffer, ScalarBuffer};

use crate::ascii::AsciiColumn;
use crate::config::GeneratorConfig;
use crate::generator::bid_fields;
use crate::model::*;
use crate::rng::{bounded32, EventStream};
use crate::tables::{Span, Tables, NO_CHANNEL};

/// Which draw of an event's stream feeds which fields. The two halves of a draw serve two
/// bounded choices.
const HOT_CHOICES: u64 = 0; // high: hot auction?  low: hot bidder?
const AUCTION: u64 = 1;
const BIDDER: u64 = 2;
const PRICE: u64 = 3;
const CHANNEL: u64 = 4; // high: hot channel?  low: which one
const EXTRA: u64 = 5; // high: padding length  low: its offset in the pool

/// Bytes the fixed bid fields count for when sizing `extra` (Flink's estimate).
const BID_FIXED_BYTES: usize = 32;

/// The bid struct column for `rows` (event positions) of the given `kinds`: bids where the
/// kind is `Bid`, nulls elsewhere. `timestamps` are the rows' event times.
pub(crate) fn bid_column(
    cfg: &GeneratorConfig,
    tables: &Tables,
    rows: &[EventPos],
    kinds: &[EventType],
    timestamps: &ScalarBuffer<i64>,
) -> ArrayRef {
    let n = rows.len();
    let shape = ExtraShape::new(BID_FIXED_BYTES, cfg.bid_avg_size);
    let pool_len = tables.pool_len();
    let quirk = if cfg.bidder_id_quirk {
        FIRST_PERSON_ID
    } else {
        0
    };
    let mut auction = Vec::with_capacity(n);
    let mut bidder = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    // The strings each row takes: an entry of the channel (and URL) table, and a piece of the
    // padding pool. They are copied in loops of their own below, whose short bodies let the
    // CPU run many rows' table lookups at once.
    let mut channels = Vec::with_capacity(n);
    let mut extras = Vec::with_capacity(n);
    for (&p, &kind) in rows.iter().zip(kinds) {
        if kind != EventType::Bid {
            auction.push(0);
            bidder.push(0);
            price.push(0);
            channels.push(NO_CHANNEL);
            extras.push(Span { start: 0, len: 0 });
            continue;
        }
        let s = EventStream::new(cfg.seed, p.id);
        let hot = s.draw(HOT_CHOICES);
        let hot_auction = bounded32((hot >> 32) as u32, cfg.hot_auction_ratio) > 0;
        let hot_bidder = bounded32(hot as u32, cfg.hot_bidders_ratio) > 0;

        let hot_id = cfg.last_base0_auction_id(p) / HOT_AUCTION_RATIO * HOT_AUCTION_RATIO;
        let cold_id = cfg.in_flight_base0_auction_id(p, s.draw(AUCTION));
        let id = if hot_auction { hot_id } else { cold_id };
        auction.push((id + FIRST_AUCTION_ID) as i64);

        let hot_id = cfg.last_base0_person_id(p) / HOT_BIDDER_RATIO * HOT_BIDDER_RATIO + 1;
        let cold_id = cfg.recent_base0_person_id(p, s.draw(BIDDER));
        let id = if hot_bidder { hot_id } else { cold_id };
        bidder.push((id + FIRST_PERSON_ID + quirk) as i64);

        // Random bits for now: prices are made in a loop of their own below.
        price.push(s.draw(PRICE) as i64);

        let c = s.draw(CHANNEL);
        let hot_channel = bounded32((c >> 32) as u32, HOT_CHANNELS_RATIO) > 0;
        let (first, count) = if hot_channel {
            (CHANNELS_NUMBER, HOT_CHANNELS.len() as u32)
        } else {
            (0, CHANNELS_NUMBER)
        };
        channels.push(first + bounded32(c as u32, count));

        let e = s.draw(EXTRA);
        let len = shape.len((e >> 32) as u32).min(pool_len);
        let start = bounded32(e as u32, (pool_len - len) as u32);
        extras.push(Span {
            start,
            len: len as u32,
        });
    }
    let mut channel = AsciiColumn::with_capacity(n, n * tables.channels.max_len);
    channel.extend_from_table(&tables.channels, &channels);
    let mut url = AsciiColumn::with_capacity(n, n * tables.urls.max_len);
    url.extend_from_table(&tables.urls, &channels);
    let max_extra = (shape.min + shape.spread as usize).min(pool_len);
    let mut extra = AsciiColumn::with_capacity(n, n * max_extra);
    extra.extend_with(&tables.pool, max_extra, &extras, |span| span);
    // Apart from the main loop, whose body is too long for the CPU to overlap one row's
    // exponential with the next row's, the price of each row is independent work.
    for p in &mut price {
        *p = price_from(*p as u64);
    }
    let nulls = if kinds.iter().all(|k| *k == EventType::Bid) {
        None
    } else {
        Some(NullBuffer::from_iter(
            kinds.iter().map(|k| *k == EventType::Bid),
        ))
    };
    let int = |v: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::new(v.into(), nulls.clone())) };
    let cols: Vec<ArrayRef> = vec![
        int(auction),
        int(bidder),
        int(price),
        channel.finish(nulls.clone()),
        url.finish(nulls.clone()),
        Arc::new(TimestampMillisecondArray::new(
            timestamps.clone(),
            nulls.clone(),
        )),
        extra.finish(nulls.clone()),
    ];
    Arc::new(StructArray::new(bid_fields(), cols, nulls))
}
