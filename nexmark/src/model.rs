//! Nexmark's entity-id arithmetic and value shapes, after Flink's (and Beam's) generator.
//! Constants are Flink's; see reference/nexmark.md §2.

use crate::config::GeneratorConfig;
use crate::rng::{bounded32, bounded64, unit_f64, Rng};

pub const FIRST_PERSON_ID: u64 = 1000;
pub const FIRST_AUCTION_ID: u64 = 1000;
pub const FIRST_CATEGORY_ID: u64 = 10;
pub const PERSON_ID_LEAD: u64 = 10;
pub const NUM_CATEGORIES: u32 = 5;
pub const AUCTION_ID_LEAD: u64 = 10;
pub const HOT_SELLER_RATIO: u64 = 100;
pub const HOT_AUCTION_RATIO: u64 = 100;
pub const HOT_BIDDER_RATIO: u64 = 100;
pub const HOT_CHANNELS_RATIO: u32 = 2;
pub const CHANNELS_NUMBER: u32 = 10_000;

pub const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
pub const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
pub const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
pub const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// What an event id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Person = 0,
    Auction = 1,
    Bid = 2,
}

/// An event id with its epoch (one round of the proportions, 50 events by default) and its
/// offset in that round, from which the event's type and entity ids follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventPos {
    pub id: u64,
    pub epoch: u64,
    pub offset: u64,
}

impl GeneratorConfig {
    fn total_proportion(&self) -> u64 {
        (self.person_proportion + self.auction_proportion + self.bid_proportion) as u64
    }

    pub(crate) fn pos(&self, id: u64) -> EventPos {
        let t = self.total_proportion();
        EventPos {
            id,
            epoch: id / t,
            offset: id % t,
        }
    }

    pub(crate) fn event_type(&self, p: EventPos) -> EventType {
        let rem = p.offset;
        if rem < self.person_proportion as u64 {
            EventType::Person
        } else if rem < (self.person_proportion + self.auction_proportion) as u64 {
            EventType::Auction
        } else {
            EventType::Bid
        }
    }

    /// The type of the event at `p`, and how many events of that type follow in a row from
    /// `p` on (itself included).
    pub(crate) fn type_run(&self, p: EventPos) -> (EventType, u64) {
        let (pp, ap) = (
            self.person_proportion as u64,
            self.auction_proportion as u64,
        );
        let kind = self.event_type(p);
        let end = match kind {
            EventType::Person => pp,
            EventType::Auction => pp + ap,
            EventType::Bid => self.total_proportion(),
        };
        (kind, end - p.offset)
    }

    /// The position `k` events after `p`, where `p.offset + k` stays within `p`'s epoch or
    /// ends it exactly.
    #[inline]
    pub(crate) fn advance_within_epoch(&self, p: EventPos, k: u64) -> EventPos {
        let mut q = EventPos {
            id: p.id + k,
            epoch: p.epoch,
            offset: p.offset + k,
        };
        if q.offset == self.total_proportion() {
            q.offset = 0;
            q.epoch += 1;
        }
        q
    }

    /// Id (base 0) of the last person created at or before `event_id`.
    pub(crate) fn last_base0_person_id(&self, p: EventPos) -> u64 {
        let epoch = p.epoch;
        let mut offset = p.offset;
        let pp = self.person_proportion as u64;
        if offset >= pp {
            offset = pp - 1;
        }
        epoch * pp + offset
    }

    /// Id (base 0) of the last auction created at or before `event_id`.
    pub(crate) fn last_base0_auction_id(&self, p: EventPos) -> u64 {
        let mut epoch = p.epoch;
        let mut offset = p.offset;
        let (pp, ap) = (
            self.person_proportion as u64,
            self.auction_proportion as u64,
        );
        if offset < pp {
            // A person: the last auction is in the previous epoch.
            if epoch == 0 {
                return 0;
            }
            epoch -= 1;
            offset = ap - 1;
        } else if offset >= pp + ap {
            // A bid: the last auction of this epoch.
            offset = ap - 1;
        } else {
            offset -= pp;
        }
        epoch * ap + offset
    }

    /// A random recent person (base 0): one of the last `num_active_people`, or a few ahead.
    pub(crate) fn next_base0_person_id(&self, p: EventPos, rng: &mut Rng) -> u64 {
        self.recent_base0_person_id(p, rng.next_u64())
    }

    /// [`Self::next_base0_person_id`] for 64 given random bits.
    #[inline]
    pub(crate) fn recent_base0_person_id(&self, p: EventPos, bits: u64) -> u64 {
        let num_people = self.last_base0_person_id(p) + 1;
        let active = num_people.min(self.num_active_people);
        num_people - active + bounded64(bits, active + PERSON_ID_LEAD)
    }

    /// A random in-flight auction (base 0), or a few ahead, for 64 random bits.
    #[inline]
    pub(crate) fn in_flight_base0_auction_id(&self, p: EventPos, bits: u64) -> u64 {
        let max_auction = self.last_base0_auction_id(p);
        let min_auction = max_auction.saturating_sub(self.num_in_flight_auctions);
        min_auction + bounded64(bits, max_auction - min_auction + 1 + AUCTION_ID_LEAD)
    }

    /// Event time of the `n`-th event (1-based) of a split.
    pub(crate) fn timestamp_for_event(&self, n: u64) -> i64 {
        self.timestamp_with_delay(n, self.inter_event_delay_us())
    }

    /// [`Self::timestamp_for_event`] with `inter_event_delay_us()` computed once by the
    /// caller, for a batch of events.
    #[inline]
    pub(crate) fn timestamp_with_delay(&self, n: u64, delay_us: f64) -> i64 {
        // Through i64: converting a u64 to f64 takes several instructions, an i64 one.
        self.base_time_ms + (((n as i64) as f64 * delay_us) as i64) / 1000
    }
}

/// Log-uniform price in cents on [100, 10^8).
#[inline]
pub(crate) fn next_price(rng: &mut Rng) -> i64 {
    price_from(rng.next_u64())
}

/// The price for 64 random bits.
#[inline]
pub(crate) fn price_from(bits: u64) -> i64 {
    // Java's Math.round is floor(x + 0.5); the value is positive, so truncation floors.
    (ten_to_the_6u(unit_f64(bits)) * 100.0 + 0.5) as i64
}

/// 10^(6u) for u in [0, 1), without a libm call (which cost 15% of bid generation): as 2^y
/// with y = 6u·log2(10) = n + j/16 + x, |x| ≤ 1/32, where 2^(j/16) comes from a table and
/// 2^x = e^(x ln 2) from its Taylor series to degree 5 (relative error below 1e-12).
#[inline]
pub(crate) fn ten_to_the_6u(u: f64) -> f64 {
    /// 2^(j/16) for j in 0..16.
    const TWO_TO_THE_SIXTEENTHS: [f64; 16] = [
        1.0,
        1.0442737824274138,
        1.0905077326652577,
        1.1387886347566916,
        1.189207115002721,
        1.241857812073484,
        1.2968395546510096,
        1.3542555469368927,
        std::f64::consts::SQRT_2,
        1.4768261459394993,
        1.5422108254079407,
        1.6104903319492543,
        1.681792830507429,
        1.7562521603732995,
        1.8340080864093424,
        1.9152065613971474,
    ];
    const INV_FACTORIALS: [f64; 6] = [1.0, 1.0, 1.0 / 2.0, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0];
    // y in sixteenths of an octave, rounded to the nearest: 0 <= y16 < 320.
    let y16 = u * (6.0 * 16.0 * std::f64::consts::LOG2_10);
    let k = (y16 + 0.5) as i64;
    let x = (y16 - k as f64) * (std::f64::consts::LN_2 / 16.0);
    let e_x = INV_FACTORIALS.iter().rev().fold(0.0, |acc, c| acc * x + c);
    // 2^(k / 16) = 2^(k >> 4) · 2^((k & 15) / 16), the first built from its exponent bits.
    let octave = f64::from_bits((((k >> 4) + 1023) as u64) << 52);
    e_x * octave * TWO_TO_THE_SIXTEENTHS[(k & 15) as usize]
}

/// Appends a random string of 3..max letters, each `special` with probability 1/13, trimmed.
pub(crate) fn push_string(rng: &mut Rng, max_len: u32, special: u8, out: &mut String) {
    let start = out.len();
    let len = 3 + rng.next_int(max_len - 3);
    for _ in 0..len {
        let c = if rng.next_int(13) == 0 {
            special
        } else {
            b'a' + rng.next_int(26) as u8
        };
        out.push(c as char);
    }
    // Java's trim(): drop leading and trailing spaces of this piece only.
    let piece = &out[start..];
    let trimmed = piece.trim_matches(|c: char| c <= ' ');
    if trimmed.len() != piece.len() {
        let t = trimmed.to_string();
        out.truncate(start);
        out.push_str(&t);
    }
}

/// Length of the `extra` padding that brings a record of `current` bytes to `avg` on average.
#[inline]
pub(crate) fn extra_len(rng: &mut Rng, current: usize, avg: usize) -> usize {
    let shape = ExtraShape::new(current, avg);
    // No draw when the length is fixed.
    if shape.spread == 0 {
        shape.min
    } else {
        shape.len((rng.next_u64() >> 32) as u32)
    }
}

/// Padding lengths are uniform on `[min, min + spread)`, or exactly `min` when `spread` is 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExtraShape {
    pub min: usize,
    pub spread: u32,
}

impl ExtraShape {
    pub fn new(current: usize, avg: usize) -> Self {
        if current > avg {
            return ExtraShape { min: 0, spread: 0 };
        }
        let d = avg - current;
        // Math.round(d * 0.2) in integers.
        let delta = (2 * d + 5) / 10;
        ExtraShape {
            min: d - delta,
            spread: 2 * delta as u32,
        }
    }

    /// The length for 32 random bits (a spread of 0 bounds the draw to 0).
    #[inline]
    pub fn len(self, bits: u32) -> usize {
        self.min + bounded32(bits, self.spread) as usize
    }
}

/// Auction lifetime in milliseconds: up to twice the event-time span of the next
/// `num_in_flight_auctions` auctions' worth of events.
pub(crate) fn auction_length_ms(
    cfg: &GeneratorConfig,
    event_number: u64,
    timestamp: i64,
    rng: &mut Rng,
) -> i64 {
    let events_for_auctions = (cfg.num_in_flight_auctions * cfg.total_proportion())
        / cfg.auction_proportion.max(1) as u64;
    let future = cfg.timestamp_for_event(event_number + events_for_auctions);
    let horizon = future - timestamp;
    1 + rng.next_long((horizon * 2).max(1) as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_one_three_fortysix_epochs() {
        let c = GeneratorConfig::default();
        let types: Vec<EventType> = (0..50).map(|id| c.event_type(c.pos(id))).collect();
        assert_eq!(types.iter().filter(|t| **t == EventType::Person).count(), 1);
        assert_eq!(
            types.iter().filter(|t| **t == EventType::Auction).count(),
            3
        );
        assert_eq!(c.event_type(c.pos(50)), EventType::Person);
        assert_eq!(c.event_type(c.pos(51)), EventType::Auction);
        let mut p = c.pos(0);
        for id in 1..500 {
            p = c.advance_within_epoch(p, 1);
            assert_eq!(p, c.pos(id), "stepping matches dividing");
        }
        assert_eq!(c.type_run(c.pos(100)), (EventType::Person, 1));
        assert_eq!(c.type_run(c.pos(102)), (EventType::Auction, 2));
        assert_eq!(c.type_run(c.pos(104)), (EventType::Bid, 46));
        assert_eq!(c.type_run(c.pos(149)), (EventType::Bid, 1));
        assert_eq!(c.advance_within_epoch(c.pos(104), 46), c.pos(150));
        assert_eq!(c.advance_within_epoch(c.pos(104), 5), c.pos(109));
        // Person ids grow by one per epoch of 50 events; auctions by three.
        assert_eq!(c.last_base0_person_id(c.pos(50)), 1);
        assert_eq!(c.last_base0_person_id(c.pos(149)), 2);
        assert_eq!(c.last_base0_auction_id(c.pos(53)), 5);
        assert_eq!(c.last_base0_auction_id(c.pos(60)), 5);
        assert_eq!(
            c.last_base0_auction_id(c.pos(100)),
            5,
            "a person event sees the previous epoch's last auction"
        );
    }

    #[test]
    fn powers_of_ten_match_libm() {
        for (j, v) in (0..16).map(|j| (j, 2f64.powf(j as f64 / 16.0))) {
            let got = ten_to_the_6u(j as f64 / (6.0 * 16.0 * std::f64::consts::LOG2_10));
            assert!(((got - v) / v).abs() < 1e-12, "table entry {j}");
        }
        for i in 0..=100_000u32 {
            let u = i as f64 / 100_000.0;
            let want = 10f64.powf(6.0 * u);
            let got = ten_to_the_6u(u);
            assert!(
                ((got - want) / want).abs() < 1e-12,
                "u={u}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn strings_have_the_flink_shape() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let mut s = String::new();
            push_string(&mut rng, 20, b' ', &mut s);
            assert!(
                s.len() < 20 && !s.starts_with(' ') && !s.ends_with(' '),
                "{s:?}"
            );
            assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()));
        }
        for _ in 0..1000 {
            let n = extra_len(&mut rng, 32, 100);
            assert!((54..82).contains(&n), "{n}");
        }
    }
}
