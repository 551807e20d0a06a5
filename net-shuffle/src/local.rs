//! Bounded in-process channels.
//!
//! One channel connects one upstream subtask to one downstream subtask, as in Flink, so that a
//! receiver can stop reading one input (barrier alignment) while others continue. The bound is
//! in messages; batches are sized for cache (about 8 Ki rows), so a bound of a few messages
//! bounds rows too. The fill level is the backpressure metric.

pub use crossbeam_channel::{Receiver, RecvError, Select, SendError, Sender, TryRecvError};

/// Default number of in-flight messages per channel.
pub const DEFAULT_CAPACITY: usize = 8;

/// A bounded channel of `capacity` messages.
pub fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::bounded(capacity.max(1))
}

/// Fill level of a channel in `[0, 1]`: 1 means the sender is being held back.
pub fn fill_level<T>(sender: &Sender<T>) -> f64 {
    match sender.capacity() {
        Some(cap) if cap > 0 => sender.len() as f64 / cap as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_channel_applies_backpressure() {
        let (tx, rx) = channel::<u32>(2);
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(fill_level(&tx), 1.0);
        assert!(tx.try_send(3).is_err(), "a full channel refuses more");
        assert_eq!(rx.recv().unwrap(), 1);
        tx.try_send(3).unwrap();
        drop(tx);
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![2, 3]);
    }
}
