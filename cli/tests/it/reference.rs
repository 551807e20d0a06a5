//! An independent reference for the stateless Nexmark queries: plain Rust over bid records,
//! sharing no code with the engine's planner, operators or functions. The events come from
//! the generator (the input, not the thing under test).

use std::sync::Arc;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{Int64Type, TimestampMillisecondType};
use chrono::{DateTime, Timelike};
use nexmark::generator::{EventColumns, NexmarkGenerator};
use nexmark::GeneratorConfig;

#[derive(Debug, Clone)]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: i64,
    pub extra: String,
}

/// The bids of `events` events with `seed`, split as `parallelism` source subtasks would.
pub fn bids(events: u64, seed: u64, rate: u64, parallelism: usize) -> Vec<Bid> {
    let cfg = Arc::new(GeneratorConfig {
        events_num: events,
        seed,
        first_event_rate: rate as f64,
        num_splits: parallelism,
        ..GeneratorConfig::default()
    });
    let mut out = Vec::new();
    for split in 0..parallelism {
        let mut g = NexmarkGenerator::new(cfg.clone(), split, EventColumns::ALL);
        while let Some(b) = g.next_batch() {
            let bid: &StructArray = b.column(3).as_struct();
            let i64s = |i: usize| bid.column(i).as_primitive::<Int64Type>().clone();
            let strs = |i: usize| bid.column(i).as_string::<i32>().clone();
            let (auction, bidder, price) = (i64s(0), i64s(1), i64s(2));
            let (channel, url, extra) = (strs(3), strs(4), strs(6));
            let ts = bid
                .column(5)
                .as_primitive::<TimestampMillisecondType>()
                .clone();
            for r in 0..b.num_rows() {
                if bid.is_null(r) {
                    continue;
                }
                out.push(Bid {
                    auction: auction.value(r),
                    bidder: bidder.value(r),
                    price: price.value(r),
                    channel: channel.value(r).to_string(),
                    url: url.value(r).to_string(),
                    date_time: ts.value(r),
                    extra: extra.value(r).to_string(),
                });
            }
        }
    }
    out
}

pub fn timestamp(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

/// `0.908 * price` as DECIMAL(23, 3) text.
pub fn euro(price: i64) -> String {
    let milli = price as i128 * 908;
    format!("{}.{:03}", milli / 1000, milli % 1000)
}

fn hour(ms: i64) -> u32 {
    DateTime::from_timestamp_millis(ms)
        .unwrap()
        .naive_utc()
        .hour()
}

/// Text after `channel_id=` where it starts the URL or follows `&`, up to the next `&`.
fn channel_id(url: &str) -> Option<String> {
    let key = "channel_id=";
    let mut from = 0;
    while let Some(pos) = url[from..].find(key) {
        let at = from + pos;
        if at == 0 || url.as_bytes()[at - 1] == b'&' {
            let rest = &url[at + key.len()..];
            return Some(rest.split('&').next().unwrap_or("").to_string());
        }
        from = at + 1;
    }
    None
}

pub fn q0(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .map(|b| {
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                timestamp(b.date_time),
                b.extra.clone(),
            ]
        })
        .collect()
}

pub fn q1(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .map(|b| {
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                euro(b.price),
                timestamp(b.date_time),
                b.extra.clone(),
            ]
        })
        .collect()
}

pub fn q2(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| vec![b.auction.to_string(), b.price.to_string()])
        .collect()
}

/// q10's rows, with the partition values as the last two columns.
pub fn q10(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .map(|b| {
            let dt = DateTime::from_timestamp_millis(b.date_time)
                .unwrap()
                .naive_utc();
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                timestamp(b.date_time),
                b.extra.clone(),
                dt.format("%Y-%m-%d").to_string(),
                dt.format("%H:%M").to_string(),
            ]
        })
        .collect()
}

pub fn q14(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .filter(|b| {
            let milli = b.price as i128 * 908;
            milli > 1_000_000_000 && milli < 50_000_000_000
        })
        .map(|b| {
            let h = hour(b.date_time);
            let kind = if (8..=18).contains(&h) {
                "dayTime"
            } else if h <= 6 || h >= 20 {
                "nightTime"
            } else {
                "otherTime"
            };
            let c = b.extra.bytes().filter(|&x| x == b'c').count();
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                euro(b.price),
                kind.to_string(),
                timestamp(b.date_time),
                b.extra.clone(),
                c.to_string(),
            ]
        })
        .collect()
}

pub fn q21(bids: &[Bid]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for b in bids {
        let lower = b.channel.to_lowercase();
        let id = channel_id(&b.url);
        let hot = ["apple", "google", "facebook", "baidu"].contains(&lower.as_str());
        if id.is_none() && !hot {
            continue;
        }
        let cid = match lower.as_str() {
            "apple" => Some("0".to_string()),
            "google" => Some("1".to_string()),
            "facebook" => Some("2".to_string()),
            "baidu" => Some("3".to_string()),
            _ => id,
        };
        out.push(vec![
            b.auction.to_string(),
            b.bidder.to_string(),
            b.price.to_string(),
            b.channel.clone(),
            cid.unwrap_or_default(),
        ]);
    }
    out
}

pub fn q22(bids: &[Bid]) -> Vec<Vec<String>> {
    bids.iter()
        .map(|b| {
            let parts: Vec<&str> = b.url.split('/').collect();
            let at = |i: usize| parts.get(i).map(|s| s.to_string()).unwrap_or_default();
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                b.channel.clone(),
                at(3),
                at(4),
                at(5),
            ]
        })
        .collect()
}

#[test]
fn reference_channel_id_matches_the_regex_semantics() {
    assert_eq!(channel_id("a?query=1&channel_id=12"), Some("12".into()));
    assert_eq!(channel_id("channel_id=5&x=1"), Some("5".into()));
    assert_eq!(channel_id("a?xchannel_id=5"), None);
}
