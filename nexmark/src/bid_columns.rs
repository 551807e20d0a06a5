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

/// Which draw of an event's stream feeds which fields. The two 32-bit halves of a draw serve
/// two bounded choices (bias below bound / 2^32).
const HOT_CHOICES: u64 = 0; // high: hot auction?  low: hot bidder?
const COLD_IDS: u64 = 1; // high: auction in flight  low: recent person
const PRICE: u64 = 2;
const CHANNEL: u64 = 3; // high: hot channel?  low: which one
const EXTRA: u64 = 4; // high: padding length  low: its offset in the pool

/// Bytes the fixed bid fields count for when sizing `extra` (Flink's estimate).
const BID_FIXED_BYTES: usize = 32;

/// One bid's drawn values, before they are laid out as columns.
#[derive(Debug, Clone, Copy)]
struct BidDraw {
    auction: i64,
    bidder: i64,
    /// The random bits of the price: prices are computed in a pass of their own.
    price_bits: u64,
    /// Index into the channel and URL tables.
    channel: u32,
    /// Piece of the padding pool.
    extra: Span,
}

/// The values under a null bid.
const NO_BID: BidDraw = BidDraw {
    auction: 0,
    bidder: 0,
    price_bits: 0,
    channel: NO_CHANNEL,
    extra: Span { start: 0, len: 0 },
};

/// The per-config constants of drawing bids.
struct BidDrawer<'a> {
    cfg: &'a GeneratorConfig,
    tables: &'a Tables,
    extra_shape: ExtraShape,
    bidder_offset: u64,
}

impl BidDrawer<'_> {
    #[inline]
    fn draw(&self, p: EventPos) -> BidDraw {
        let cfg = self.cfg;
        let s = EventStream::new(cfg.seed, p.id);
        let hot = s.draw(HOT_CHOICES);
        let cold = s.draw(COLD_IDS);
        let hot_auction = bounded32((hot >> 32) as u32, cfg.hot_auction_ratio) > 0;
        let hot_bidder = bounded32(hot as u32, cfg.hot_bidders_ratio) > 0;

        let hot_id = cfg.last_base0_auction_id(p) / HOT_AUCTION_RATIO * HOT_AUCTION_RATIO;
        let cold_id = cfg.in_flight_base0_auction_id(p, cold & !0xffff_ffff);
        let auction = if hot_auction { hot_id } else { cold_id } + FIRST_AUCTION_ID;

        let hot_id = cfg.last_base0_person_id(p) / HOT_BIDDER_RATIO * HOT_BIDDER_RATIO + 1;
        let cold_id = cfg.recent_base0_person_id(p, cold << 32);
        let bidder = if hot_bidder { hot_id } else { cold_id } + self.bidder_offset;

        let c = s.draw(CHANNEL);
        let hot_channel = bounded32((c >> 32) as u32, HOT_CHANNELS_RATIO) > 0;
        let (first, count) = if hot_channel {
            (CHANNELS_NUMBER, HOT_CHANNELS.len() as u32)
        } else {
            (0, CHANNELS_NUMBER)
        };

        let e = s.draw(EXTRA);
        let extra_len = self.extra_shape.len((e >> 32) as u32);
        BidDraw {
            auction: auction as i64,
            bidder: bidder as i64,
            price_bits: s.draw(PRICE),
            channel: first + bounded32(c as u32, count),
            extra: self.tables.extra_span(extra_len, e as u32),
        }
    }
}

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
    let drawer = BidDrawer {
        cfg,
        extra_shape: ExtraShape::new(BID_FIXED_BYTES, cfg.bid_avg_size),
        tables,
        bidder_offset: FIRST_PERSON_ID
            + if cfg.bidder_id_quirk {
                FIRST_PERSON_ID
            } else {
                0
            },
    };
    // Row by row into one vector (collecting from a zip of slices writes without capacity
    // checks), then column by column: each pass is short and independent across rows, so the
    // CPU overlaps many rows' exponentials and table lookups.
    let draws: Vec<BidDraw> = rows
        .iter()
        .zip(kinds)
        .map(|(&p, &kind)| {
            if kind == EventType::Bid {
                drawer.draw(p)
            } else {
                NO_BID
            }
        })
        .collect();
    let auction: Vec<i64> = draws.iter().map(|d| d.auction).collect();
    let bidder: Vec<i64> = draws.iter().map(|d| d.bidder).collect();
    let price: Vec<i64> = draws.iter().map(|d| price_from(d.price_bits)).collect();
    let channels: Vec<u32> = draws.iter().map(|d| d.channel).collect();
    let mut channel = AsciiColumn::with_capacity(n, n * tables.channels.max_len);
    channel.extend_from_table(&tables.channels, &channels);
    let mut url = AsciiColumn::with_capacity(n, n * tables.urls.max_len);
    url.extend_from_table(&tables.urls, &channels);
    let shape = drawer.extra_shape;
    let max_extra = (shape.min + shape.spread as usize).min(tables.pool_len());
    let mut extra = AsciiColumn::with_capacity(n, n * max_extra);
    extra.extend_with(&tables.pool, max_extra, &draws, |d| d.extra);
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
