//! Generator settings, named after the Flink connector's options.

use kernel::connector::Options;
use kernel::{Error, Result};

/// 2015-07-15 00:00:00 UTC: a fixed start of event time, so runs are repeatable (Flink uses
/// the wall clock at job start).
pub const DEFAULT_BASE_TIME_MS: i64 = 1_436_918_400_000;

#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorConfig {
    /// Total events over all splits (`events.num`); 0 means practically unbounded.
    pub events_num: u64,
    /// Event-time density in events per second over all splits (`first-event.rate`).
    pub first_event_rate: f64,
    /// Number of parallel splits the events are divided into (Flink: source parallelism).
    pub num_splits: usize,
    pub person_proportion: u32,
    pub auction_proportion: u32,
    pub bid_proportion: u32,
    /// P(hot) = 1 - 1/ratio (`bid.hot-ratio.auctions`, …).
    pub hot_auction_ratio: u32,
    pub hot_bidders_ratio: u32,
    pub hot_sellers_ratio: u32,
    pub person_avg_size: usize,
    pub auction_avg_size: usize,
    pub bid_avg_size: usize,
    pub num_active_people: u64,
    pub num_in_flight_auctions: u64,
    pub base_time_ms: i64,
    pub seed: u64,
    /// Flink adds the first person id to bidders twice, so bidder ids are base + 2000 while
    /// person ids are base + 1000 (nexmark issue 30). On by default for comparability.
    pub bidder_id_quirk: bool,
    /// Without `max-emit-speed`, events are released at their event time on the wall clock.
    pub max_emit_speed: bool,
    pub batch_size: usize,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            events_num: 0,
            first_event_rate: 10_000.0,
            num_splits: 1,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            hot_auction_ratio: 2,
            hot_bidders_ratio: 4,
            hot_sellers_ratio: 4,
            person_avg_size: 200,
            auction_avg_size: 500,
            bid_avg_size: 100,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            seed: 0,
            bidder_id_quirk: true,
            max_emit_speed: true,
            batch_size: 8192,
        }
    }
}

/// Option keys of `'connector' = 'nexmark'`: Flink's, plus eddy's `seed`, `base-time`,
/// `bidder-id-quirk` and `batch-size`. The rate-shape options are accepted and, as in Flink,
/// have no effect.
pub const OPTION_KEYS: &[&str] = &[
    "first-event.rate",
    "next-event.rate",
    "rate.shape",
    "rate.period",
    "rate.limited",
    "events.num",
    "person.proportion",
    "auction.proportion",
    "bid.proportion",
    "bid.hot-ratio.auctions",
    "bid.hot-ratio.bidders",
    "auction.hot-ratio.sellers",
    "person.avg-size",
    "auction.avg-size",
    "bid.avg-size",
    "keep-alive",
    "stop-at",
    "max-emit-speed",
    "scan.parallelism",
    "seed",
    "base-time",
    "bidder-id-quirk",
    "batch-size",
];

fn size(options: &Options, table: &str, key: &str, default: usize) -> Result<usize> {
    match options.get(key) {
        None => Ok(default),
        Some(v) => {
            let t = v.trim().trim_end_matches(['b', 'B']);
            t.parse().map_err(|_| {
                Error::user(format!(
                    "table '{table}': option '{key}' = '{v}' is not a size like '100b'"
                ))
            })
        }
    }
}

impl GeneratorConfig {
    pub fn from_options(options: &Options, table: &str) -> Result<Self> {
        let d = GeneratorConfig::default();
        let num = |key: &str, default: u32| -> Result<u32> {
            Ok(options
                .parse::<u32>(table, key, "a whole number")?
                .unwrap_or(default))
        };
        let base_time_ms = match options.get("base-time") {
            None => d.base_time_ms,
            Some(v) => match v.parse::<i64>() {
                Ok(ms) => ms,
                Err(_) => formats::parse_timestamp_ms(v.trim()).ok_or_else(|| {
                    Error::user(format!(
                        "table '{table}': option 'base-time' = '{v}' is neither epoch milliseconds nor 'yyyy-MM-dd HH:mm:ss'"
                    ))
                })?,
            },
        };
        let c = GeneratorConfig {
            events_num: options
                .parse(table, "events.num", "an event count")?
                .unwrap_or(0),
            first_event_rate: options
                .parse(table, "first-event.rate", "a rate")?
                .unwrap_or(d.first_event_rate),
            num_splits: 1,
            person_proportion: num("person.proportion", d.person_proportion)?,
            auction_proportion: num("auction.proportion", d.auction_proportion)?,
            bid_proportion: num("bid.proportion", d.bid_proportion)?,
            hot_auction_ratio: num("bid.hot-ratio.auctions", d.hot_auction_ratio)?,
            hot_bidders_ratio: num("bid.hot-ratio.bidders", d.hot_bidders_ratio)?,
            hot_sellers_ratio: num("auction.hot-ratio.sellers", d.hot_sellers_ratio)?,
            person_avg_size: size(options, table, "person.avg-size", d.person_avg_size)?,
            auction_avg_size: size(options, table, "auction.avg-size", d.auction_avg_size)?,
            bid_avg_size: size(options, table, "bid.avg-size", d.bid_avg_size)?,
            num_active_people: d.num_active_people,
            num_in_flight_auctions: d.num_in_flight_auctions,
            base_time_ms,
            seed: options
                .parse(table, "seed", "a whole number")?
                .unwrap_or(d.seed),
            bidder_id_quirk: options.bool(table, "bidder-id-quirk", true)?,
            max_emit_speed: options.bool(table, "max-emit-speed", true)?,
            batch_size: options
                .parse(table, "batch-size", "a row count")?
                .unwrap_or(d.batch_size),
        };
        c.validate(table)?;
        Ok(c)
    }

    pub fn validate(&self, table: &str) -> Result<()> {
        let bad = |m: &str| Err(Error::user(format!("table '{table}': {m}")));
        if self.person_proportion == 0 || self.auction_proportion == 0 || self.bid_proportion == 0 {
            return bad("person, auction and bid proportions must all be at least 1");
        }
        if self.hot_auction_ratio == 0 || self.hot_bidders_ratio == 0 || self.hot_sellers_ratio == 0
        {
            return bad("hot ratios must be at least 1");
        }
        if self.first_event_rate.is_nan() || self.first_event_rate <= 0.0 {
            return bad("'first-event.rate' must be positive");
        }
        if self.batch_size == 0 {
            return bad("'batch-size' must be positive");
        }
        Ok(())
    }

    /// Total number of events (`events.num`, or practically unbounded when 0, as Flink).
    pub fn total_events(&self) -> u64 {
        if self.events_num == 0 {
            (i64::MAX as u64) / (50 * 500)
        } else {
            self.events_num
        }
    }

    /// Microseconds of event time between two events of one split.
    pub fn inter_event_delay_us(&self) -> f64 {
        1_000_000.0 / self.first_event_rate * self.num_splits as f64
    }
}
