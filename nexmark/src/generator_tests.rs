//! The generator against the statistical shape of Flink's (reference/nexmark.md §2.4).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMillisecondType};

use crate::generator::{EventColumns, NexmarkGenerator};
use crate::GeneratorConfig;

fn config(events: u64, splits: usize) -> Arc<GeneratorConfig> {
    Arc::new(GeneratorConfig {
        events_num: events,
        num_splits: splits,
        first_event_rate: 1_000_000.0,
        seed: 9,
        ..Default::default()
    })
}

fn all_batches(cfg: &Arc<GeneratorConfig>) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for split in 0..cfg.num_splits {
        let mut g = NexmarkGenerator::new(cfg.clone(), split, EventColumns::ALL);
        while let Some(b) = g.next_batch() {
            out.push(b);
        }
    }
    out
}

fn i64_child(s: &StructArray, i: usize) -> Vec<Option<i64>> {
    s.column(i).as_primitive::<Int64Type>().iter().collect()
}

#[test]
fn event_mix_is_one_three_fortysix() {
    let batches = all_batches(&config(100_000, 1));
    let mut counts = [0usize; 3];
    for b in &batches {
        for t in b.column(0).as_primitive::<Int32Type>().values() {
            counts[*t as usize] += 1;
        }
        // Exactly the row of the event's type is set.
        let types = b.column(0).as_primitive::<Int32Type>();
        for k in 0..3 {
            let s = b.column(k + 1).as_struct();
            for r in 0..b.num_rows() {
                assert_eq!(s.is_valid(r), types.value(r) == k as i32);
                assert_eq!(
                    s.column(0).is_valid(r),
                    s.is_valid(r),
                    "children are null where the row is"
                );
            }
        }
    }
    assert_eq!(counts, [2_000, 6_000, 92_000]);
}

#[test]
fn hot_keys_and_prices_have_flinks_shares() {
    let batches = all_batches(&config(200_000, 1));
    let (mut bids, mut hot_auction, mut hot_bidder, mut hot_channel, mut with_id) = (0, 0, 0, 0, 0);
    let mut tiers = [0usize; 3];
    let mut extra_total = 0usize;
    let mut auction_counts: HashMap<i64, usize> = HashMap::new();
    for b in &batches {
        let bid = b.column(3).as_struct();
        let (auctions, bidders, prices) = (i64_child(bid, 0), i64_child(bid, 1), i64_child(bid, 2));
        let channels = bid.column(3).as_string::<i32>();
        let urls = bid.column(4).as_string::<i32>();
        let extras = bid.column(6).as_string::<i32>();
        for r in 0..b.num_rows() {
            let Some(auction) = auctions[r] else { continue };
            bids += 1;
            *auction_counts.entry(auction).or_default() += 1;
            // Hot auctions are multiples of 100 (+1000), hot bidders 100k + 1 (+2000, the quirk).
            hot_auction += usize::from((auction - 1000) % 100 == 0);
            hot_bidder += usize::from((bidders[r].unwrap() - 2001) % 100 == 0);
            let p = prices[r].unwrap();
            assert!((100..100_000_000).contains(&p), "price {p}");
            tiers[if p < 10_000 {
                0
            } else if p < 1_000_000 {
                1
            } else {
                2
            }] += 1;
            let ch = channels.value(r);
            if ["Google", "Facebook", "Baidu", "Apple"].contains(&ch) {
                hot_channel += 1;
            } else {
                assert!(ch.starts_with("channel-"));
                with_id += usize::from(urls.value(r).contains("&channel_id="));
            }
            assert!(
                urls.value(r).starts_with("https://www.nexmark.com/")
                    && urls.value(r).contains("/item.htm?query=1")
            );
            extra_total += extras.value(r).len();
        }
    }
    let share = |x: usize| x as f64 / bids as f64;
    // Hot with probability 1/2 and 3/4; a random pick is hot by chance about 1% of the time.
    assert!(
        (0.49..0.53).contains(&share(hot_auction)),
        "hot auctions {}",
        share(hot_auction)
    );
    assert!(
        (0.74..0.77).contains(&share(hot_bidder)),
        "hot bidders {}",
        share(hot_bidder)
    );
    assert!(
        (0.48..0.52).contains(&share(hot_channel)),
        "hot channels {}",
        share(hot_channel)
    );
    let non_hot = bids - hot_channel;
    assert!(
        (0.88..0.92).contains(&(with_id as f64 / non_hot as f64)),
        "channel ids {with_id}/{non_hot}"
    );
    for t in tiers {
        assert!((0.32..0.35).contains(&share(t)), "price tiers {tiers:?}");
    }
    // extra pads a 32-byte bid to 100 bytes on average: 68 ± a little.
    let avg_extra = extra_total as f64 / bids as f64;
    assert!((66.0..70.0).contains(&avg_extra), "extra {avg_extra}");
}

#[test]
fn people_and_auctions_have_their_shapes() {
    let batches = all_batches(&config(100_000, 1));
    let mut hot_sellers = 0;
    let mut auctions = 0;
    for b in &batches {
        let person = b.column(1).as_struct();
        let auction = b.column(2).as_struct();
        let (initials, reserves, sellers) = (
            i64_child(auction, 3),
            i64_child(auction, 4),
            i64_child(auction, 7),
        );
        for r in 0..b.num_rows() {
            if person.is_valid(r) {
                let state = person.column(5).as_string::<i32>().value(r);
                assert!(["AZ", "CA", "ID", "OR", "WA", "WY"].contains(&state));
                let email = person.column(2).as_string::<i32>().value(r);
                assert!(email.contains('@') && email.ends_with(".com"), "{email}");
                let card = person.column(3).as_string::<i32>().value(r);
                assert_eq!(card.len(), 19, "{card}");
            }
            if auction.is_valid(r) {
                auctions += 1;
                let ts = auction
                    .column(5)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(r);
                let expires = auction
                    .column(6)
                    .as_primitive::<TimestampMillisecondType>()
                    .value(r);
                assert!(expires > ts);
                let category = auction.column(8).as_primitive::<Int64Type>().value(r);
                assert!((10..15).contains(&category));
                assert!(reserves[r].unwrap() > initials[r].unwrap());
                let seller = sellers[r].unwrap();
                hot_sellers += usize::from((seller - 1000) % 100 == 0);
            }
        }
    }
    let share = hot_sellers as f64 / auctions as f64;
    assert!((0.73..0.78).contains(&share), "hot sellers {share}");
}

#[test]
fn same_seed_same_events_and_splits_share_ids_but_not_timelines() {
    let one = all_batches(&config(20_000, 1));
    assert_eq!(
        one,
        all_batches(&config(20_000, 1)),
        "deterministic per seed"
    );
    let two = all_batches(&config(20_000, 2));
    let bid_prices = |bs: &[RecordBatch]| -> Vec<Option<i64>> {
        bs.iter()
            .flat_map(|b| i64_child(b.column(3).as_struct(), 2))
            .collect()
    };
    assert_eq!(
        bid_prices(&one),
        bid_prices(&two),
        "values depend only on the event id"
    );
    // Each split runs its own timeline from the base time: split 1 of 2 starts at the base
    // time, while in one split the same event (id 10,002) comes 10 ms of event time later.
    let first_time = |b: &RecordBatch| -> i64 {
        let bid = b.column(3).as_struct();
        let ts = bid.column(5).as_primitive::<TimestampMillisecondType>();
        (0..b.num_rows())
            .find(|&r| bid.is_valid(r))
            .map(|r| ts.value(r))
            .unwrap()
    };
    let base = crate::config::DEFAULT_BASE_TIME_MS;
    let mut split1 = NexmarkGenerator::new(config(20_000, 2), 1, EventColumns::ALL);
    assert!(first_time(&split1.next_batch().unwrap()) - base <= 1);
    let cfg = Arc::new(GeneratorConfig {
        batch_size: 10_000,
        ..(*config(20_000, 1)).clone()
    });
    let mut whole = NexmarkGenerator::new(cfg, 0, EventColumns::ALL);
    whole.next_batch();
    assert!((9..=11).contains(&(first_time(&whole.next_batch().unwrap()) - base)));
}

#[test]
fn restricting_event_types_keeps_exactly_those_events() {
    let cfg = config(10_000, 1);
    let bids_of = |bs: Vec<RecordBatch>| -> Vec<Option<i64>> {
        bs.iter()
            .flat_map(|b| i64_child(b.column(3).as_struct(), 2))
            .flatten()
            .map(Some)
            .collect()
    };
    let all = bids_of(all_batches(&cfg));
    let mut g =
        NexmarkGenerator::new(cfg, 0, EventColumns::ALL).with_event_types([false, false, true]);
    let mut only = Vec::new();
    while let Some(b) = g.next_batch() {
        assert!(
            b.column(1).as_struct().null_count() == b.num_rows(),
            "no person rows"
        );
        only.push(b);
    }
    assert_eq!(bids_of(only), all);
}
