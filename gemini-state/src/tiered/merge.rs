//! Merging sorted sources (tier 0's entries, run files) into one stream of the newest
//! version of each key: the read path of scans and the input of compactions.

use std::sync::Arc;

use crate::run::{Kind, RunIter};
use crate::tiered::version::Run;
use crate::StateResult;

/// One version of a key, owned (the merge reuses the buffers).
#[derive(Debug, Default, Clone)]
pub(crate) struct Head {
    pub key: Vec<u8>,
    pub kind: Option<Kind>,
    pub written_at: i64,
    pub value: Vec<u8>,
}

impl Head {
    fn set(&mut self, key: &[u8], kind: Kind, written_at: i64, value: &[u8]) {
        self.key.clear();
        self.key.extend_from_slice(key);
        self.kind = Some(kind);
        self.written_at = written_at;
        self.value.clear();
        self.value.extend_from_slice(value);
    }
}

/// A sorted source of versions.
pub(crate) enum Source {
    /// Entries copied out of tier 0, in key order.
    Memory(std::vec::IntoIter<Head>),
    /// A run file from a start key up to an end key.
    Run(RunSource),
}

/// A run file's entries up to an end key; with `resolve`, blob references are replaced by
/// the values they point at (scans), without, passed on as they are (compactions).
pub(crate) struct RunSource {
    iter: RunIter,
    end: Vec<u8>,
    resolve: Option<Arc<Run>>,
    value: Vec<u8>,
}

impl Source {
    pub(crate) fn run(
        run: &Arc<Run>,
        start: &[u8],
        end: &[u8],
        resolve: bool,
    ) -> StateResult<Source> {
        let file = Arc::clone(run.file()?);
        Ok(Source::Run(RunSource {
            iter: RunIter::seek(file, start)?,
            end: end.to_vec(),
            resolve: resolve.then(|| run.clone()),
            value: Vec::new(),
        }))
    }

    fn advance(&mut self, head: &mut Head) -> StateResult<bool> {
        match self {
            Source::Memory(it) => match it.next() {
                Some(h) => {
                    *head = h;
                    Ok(true)
                }
                None => Ok(false),
            },
            Source::Run(source) => match source.iter.next()? {
                Some((k, s)) if k < source.end.as_slice() => {
                    head.set(k, s.kind, s.written_at, s.value);
                    if let (Kind::Blob, Some(run)) = (s.kind, &source.resolve) {
                        run.read_blob(&head.value, &mut source.value)?;
                        std::mem::swap(&mut head.value, &mut source.value);
                        head.kind = Some(Kind::Put);
                    }
                    Ok(true)
                }
                _ => Ok(false),
            },
        }
    }
}

/// The merge of sources given newest first: for a key held by several, the first wins.
pub(crate) struct Merge {
    sources: Vec<Source>,
    heads: Vec<Option<Head>>,
}

impl Merge {
    pub(crate) fn new(mut sources: Vec<Source>) -> StateResult<Merge> {
        let mut heads = Vec::with_capacity(sources.len());
        for s in &mut sources {
            let mut h = Head::default();
            heads.push(if s.advance(&mut h)? { Some(h) } else { None });
        }
        Ok(Merge { sources, heads })
    }

    /// The next key's newest version (tombstones included) into `out`; false at the end.
    pub(crate) fn next_into(&mut self, out: &mut Head) -> StateResult<bool> {
        let mut best: Option<usize> = None;
        for (i, h) in self.heads.iter().enumerate() {
            if let Some(h) = h {
                match best {
                    Some(b) if self.heads[b].as_ref().expect("set").key <= h.key => {}
                    _ => best = Some(i),
                }
            }
        }
        let Some(best) = best else {
            return Ok(false);
        };
        std::mem::swap(out, self.heads[best].as_mut().expect("set"));
        // Every source at the same key moves on; older versions are shadowed.
        for i in 0..self.sources.len() {
            let same = i == best || self.heads[i].as_ref().is_some_and(|h| h.key == out.key);
            if same {
                let head = self.heads[i].as_mut().expect("set");
                if !self.sources[i].advance(head)? {
                    self.heads[i] = None;
                }
            }
        }
        Ok(true)
    }
}
