//! The in-process transport: one bounded crossbeam channel per [`ChannelSpec`].
//!
//! The bound is in messages; batches are sized for cache (about 8 Ki rows), so a bound of a
//! few messages bounds rows too.

use std::collections::HashMap;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender};
use kernel::types::Message;
use kernel::Result;

use crate::transport::{ChannelSender, ChannelSpec, Disconnected, Endpoints, InputGate, Transport};

/// Channels between threads of this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn connect(&self, channels: &[ChannelSpec], capacity: usize) -> Result<Endpoints> {
        let mut senders: Vec<Box<dyn ChannelSender>> = Vec::with_capacity(channels.len());
        let mut receivers: HashMap<(usize, usize), Vec<Receiver<Message>>> = HashMap::new();
        for spec in channels {
            let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
            senders.push(Box::new(LocalSender(tx)));
            receivers
                .entry((spec.to_node, spec.to_subtask))
                .or_default()
                .push(rx);
        }
        let gates = receivers
            .into_iter()
            .map(|(at, receivers)| (at, Box::new(LocalGate { receivers }) as Box<dyn InputGate>))
            .collect();
        Ok(Endpoints { senders, gates })
    }
}

struct LocalSender(Sender<Message>);

impl ChannelSender for LocalSender {
    fn send(&self, msg: Message) -> Result<(), Disconnected> {
        self.0.send(msg).map_err(|_| Disconnected)
    }

    fn fill_level(&self) -> f64 {
        match self.0.capacity() {
            Some(cap) if cap > 0 => self.0.len() as f64 / cap as f64,
            _ => 0.0,
        }
    }
}

struct LocalGate {
    receivers: Vec<Receiver<Message>>,
}

impl InputGate for LocalGate {
    fn num_channels(&self) -> usize {
        self.receivers.len()
    }

    fn ready(&mut self, among: &[usize], deadline: Option<Instant>) -> Option<usize> {
        let mut sel = Select::new();
        for &i in among {
            sel.recv(&self.receivers[i]);
        }
        match deadline {
            None => Some(among[sel.ready()]),
            Some(d) => sel.ready_deadline(d).ok().map(|k| among[k]),
        }
    }

    fn recv(&mut self, channel: usize) -> Result<Message, Disconnected> {
        self.receivers[channel].recv().map_err(|_| Disconnected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel::types::{Barrier, Watermark};
    use std::time::Duration;

    fn spec(from_subtask: usize, to_subtask: usize) -> ChannelSpec {
        ChannelSpec {
            edge: 0,
            from_subtask,
            to_node: 1,
            to_subtask,
        }
    }

    #[test]
    fn a_full_channel_holds_its_sender_back_until_read() {
        let mut ends = LocalTransport.connect(&[spec(0, 0)], 2).unwrap();
        let tx = ends.senders.pop().unwrap();
        let mut gate = ends.gates.remove(&(1, 0)).unwrap();
        tx.send(Message::Watermark(Watermark::EventTime(1)))
            .unwrap();
        tx.send(Message::Watermark(Watermark::EventTime(2)))
            .unwrap();
        assert_eq!(tx.fill_level(), 1.0);
        let sender = std::thread::spawn(move || {
            tx.send(Message::End).unwrap();
            tx
        });
        let first = gate.recv(0).unwrap();
        assert!(matches!(first, Message::Watermark(Watermark::EventTime(1))));
        let tx = sender.join().unwrap();
        assert!(matches!(gate.recv(0).unwrap(), Message::Watermark(_)));
        assert!(matches!(gate.recv(0).unwrap(), Message::End));
        drop(tx);
        assert_eq!(gate.recv(0).unwrap_err(), Disconnected);
    }

    #[test]
    fn a_gate_says_which_channel_is_ready_or_that_the_deadline_passed() {
        let specs = [spec(0, 0), spec(1, 0), spec(0, 1)];
        let mut ends = LocalTransport.connect(&specs, 4).unwrap();
        assert_eq!(ends.gates[&(1, 0)].num_channels(), 2);
        assert_eq!(ends.gates[&(1, 1)].num_channels(), 1);
        let gate = ends.gates.get_mut(&(1, 0)).unwrap();
        let soon = Instant::now() + Duration::from_millis(5);
        assert_eq!(gate.ready(&[0, 1], Some(soon)), None);
        ends.senders[1]
            .send(Message::Barrier(Barrier { checkpoint_id: 7 }))
            .unwrap();
        assert_eq!(gate.ready(&[0, 1], None), Some(1));
        assert!(matches!(
            gate.recv(1).unwrap(),
            Message::Barrier(Barrier { checkpoint_id: 7 })
        ));
    }
}
