//! The tail of a task: sends what its chain emits to the downstream subtasks of each outgoing
//! edge, partitioned as the edge says.

use arrow::array::RecordBatch;
use kernel::graph::Partitioning;
use kernel::operator::Output;
use kernel::types::Message;
use kernel::{Error, Result};
use net_shuffle::ChannelSender;

/// The channels of one outgoing edge, indexed by downstream subtask (`None` where this
/// subtask is not connected, as for forward edges).
pub(crate) struct EdgeSenders {
    pub partitioning: Partitioning,
    pub senders: Vec<Option<Box<dyn ChannelSender>>>,
    pub max_parallelism: usize,
    next_round_robin: usize,
}

impl EdgeSenders {
    pub fn new(
        partitioning: Partitioning,
        senders: Vec<Option<Box<dyn ChannelSender>>>,
        max_parallelism: usize,
        subtask: usize,
    ) -> Self {
        // Start round-robin at our own index so that parallel upstreams spread out.
        EdgeSenders {
            partitioning,
            senders,
            max_parallelism,
            next_round_robin: subtask,
        }
    }

    fn send(&self, target: usize, msg: Message) -> Result<()> {
        match &self.senders[target] {
            Some(s) => s
                .send(msg)
                .map_err(|_| Error::internal("a downstream task stopped early")),
            None => Err(Error::internal(format!(
                "no channel to downstream subtask {target}"
            ))),
        }
    }

    fn send_batch(&mut self, batch: RecordBatch) -> Result<()> {
        let n = self.senders.len();
        match &self.partitioning {
            Partitioning::Forward => {
                let target = self
                    .senders
                    .iter()
                    .position(Option::is_some)
                    .expect("forward edge has a channel");
                self.send(target, Message::Batch(batch))
            }
            Partitioning::Single => self.send(0, Message::Batch(batch)),
            Partitioning::Rebalance => {
                let target = self.next_round_robin % n;
                self.next_round_robin = self.next_round_robin.wrapping_add(1);
                self.send(target, Message::Batch(batch))
            }
            Partitioning::Broadcast => {
                for t in 0..n {
                    self.send(t, Message::Batch(batch.clone()))?;
                }
                Ok(())
            }
            Partitioning::Hash(keys) => {
                let parts = net_shuffle::hash_partition(&batch, keys, self.max_parallelism, n)?;
                for (t, part) in parts.into_iter().enumerate() {
                    if let Some(p) = part {
                        self.send(t, Message::Batch(p))?;
                    }
                }
                Ok(())
            }
        }
    }

    fn send_all(&self, msg: &Message) -> Result<()> {
        for t in 0..self.senders.len() {
            if self.senders[t].is_some() {
                self.send(t, msg.clone())?;
            }
        }
        Ok(())
    }
}

pub(crate) struct Router {
    pub edges: Vec<EdgeSenders>,
}

impl Output for Router {
    fn emit(&mut self, msg: Message) -> Result<()> {
        match msg {
            Message::Batch(b) => {
                if b.num_rows() == 0 {
                    return Ok(());
                }
                match self.edges.as_mut_slice() {
                    [] => Ok(()),
                    [only] => only.send_batch(b),
                    many => {
                        for e in many {
                            e.send_batch(b.clone())?;
                        }
                        Ok(())
                    }
                }
            }
            // Control messages reach every downstream subtask.
            other => {
                for e in &self.edges {
                    e.send_all(&other)?;
                }
                Ok(())
            }
        }
    }
}
