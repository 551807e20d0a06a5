//! Window geometry: which slice a row falls in, which windows a slice belongs to, which slices
//! make a window.
//!
//! Rows are assigned to *slices*, not windows, as in Flink's slicing window operators: a TUMBLE
//! window is one slice; a HOP window of `size` sliding by `slide` is made of slices of
//! gcd(size, slide); a CUMULATE window grows by one `step` slice at a time. Each row updates
//! exactly one slice, whatever the overlap of the windows.

use arrow::array::{Int64Array, UInt32Array};
use serde::{Deserialize, Serialize};

/// The window function of a window aggregation, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowKind {
    Tumble { size: i64 },
    Hop { size: i64, slide: i64 },
    Cumulate { size: i64, step: i64 },
}

/// A window function with its offset (windows start at `offset + k · size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub offset: i64,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl WindowSpec {
    /// Checks the sizes as Flink does; the message names what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let positive = |what: &str, v: i64| {
            if v > 0 {
                Ok(())
            } else {
                Err(format!(
                    "the {what} of a window must be positive, got {v} ms"
                ))
            }
        };
        match self.kind {
            WindowKind::Tumble { size } => positive("size", size),
            WindowKind::Hop { size, slide } => {
                positive("size", size)?;
                positive("slide", slide)?;
                if slide > size {
                    // Rows between two windows would belong to none; Flink, which wants the
                    // size to be a multiple of the slide, refuses it too.
                    return Err(format!(
                        "a HOP window's slide ({slide} ms) must not be larger than its size ({size} ms)"
                    ));
                }
                Ok(())
            }
            WindowKind::Cumulate { size, step } => {
                positive("size", size)?;
                positive("step", step)?;
                if size % step != 0 {
                    return Err(format!(
                        "a CUMULATE window's size ({size} ms) must be a multiple of its step ({step} ms)"
                    ));
                }
                Ok(())
            }
        }
    }

    /// The length of a slice.
    pub fn slice_size(&self) -> i64 {
        match self.kind {
            WindowKind::Tumble { size } => size,
            WindowKind::Hop { size, slide } => gcd(size, slide),
            WindowKind::Cumulate { step, .. } => step,
        }
    }

    /// The distance between consecutive window ends.
    fn end_step(&self) -> i64 {
        match self.kind {
            WindowKind::Tumble { size } => size,
            WindowKind::Hop { slide, .. } => slide,
            WindowKind::Cumulate { step, .. } => step,
        }
    }

    /// `t` rounded down to the grid `offset + k · unit`.
    fn floor(&self, t: i64, unit: i64) -> i64 {
        (t - self.offset).div_euclid(unit) * unit + self.offset
    }

    /// The exclusive end of the slice holding a row at `ts`.
    pub fn slice_end(&self, ts: i64) -> i64 {
        let s = self.slice_size();
        self.floor(ts, s) + s
    }

    /// [`Self::slice_end`] of every time of a batch, the slice size worked out once.
    pub fn slice_ends(&self, times: &Int64Array) -> Int64Array {
        let (s, offset) = (self.slice_size(), self.offset);
        times.unary(|t| (t - offset).div_euclid(s) * s + s + offset)
    }

    /// The grid of this spec's window ends as tumbling windows, one per end: how an
    /// aggregation over rows that already carry their window (Flink's window-attached
    /// aggregation, keyed by `window_start, window_end` of an upstream window) assigns them,
    /// a row's time being its window end − 1 ms.
    pub fn end_grid(&self) -> WindowSpec {
        WindowSpec {
            kind: WindowKind::Tumble {
                size: self.end_step(),
            },
            offset: self.offset,
        }
    }

    /// The start of the window ending at `end`.
    pub fn window_start(&self, end: i64) -> i64 {
        match self.kind {
            WindowKind::Tumble { size } | WindowKind::Hop { size, .. } => end - size,
            WindowKind::Cumulate { size, .. } => self.floor(end - 1, size),
        }
    }

    /// The ends of the windows that contain the slice ending at `slice_end`, earliest first.
    pub fn windows_of_slice(&self, slice_end: i64) -> Vec<i64> {
        let slice_start = slice_end - self.slice_size();
        let step = self.end_step();
        // The first window end on the grid at or after the slice's end.
        let first = self.floor(slice_end - 1, step) + step;
        let mut ends = Vec::new();
        let mut e = first;
        while self.window_start(e) <= slice_start {
            ends.push(e);
            e += step;
            if matches!(self.kind, WindowKind::Tumble { .. }) {
                break;
            }
        }
        ends
    }

    /// The ends of the slices that make the window ending at `end`, earliest first.
    pub fn slices_of_window(&self, end: i64) -> impl Iterator<Item = i64> {
        let s = self.slice_size();
        let start = self.window_start(end);
        (1..=(end - start) / s).map(move |k| start + k * s)
    }

    /// The end of the last window the slice ending at `slice_end` belongs to: the slice is
    /// no longer needed once that window has fired. A spec that passed
    /// [`validate`](Self::validate) puts every slice in a window; were one in none, it would
    /// be needed by no window, so it is done with at its own end.
    pub fn last_window_of_slice(&self, slice_end: i64) -> i64 {
        self.windows_of_slice(slice_end)
            .last()
            .copied()
            .unwrap_or(slice_end)
    }
}

/// Row indices of `values` grouped by value (slice or window ends), first-seen order; `None`
/// if all are equal. Event time mostly grows, so a batch holds few distinct ends.
pub(crate) fn rows_by_value(slice_ends: &Int64Array) -> Option<Vec<(i64, UInt32Array)>> {
    let values = slice_ends.values();
    let first = *values.first()?;
    if values.iter().all(|&v| v == first) {
        return None;
    }
    let mut parts: Vec<(i64, Vec<u32>)> = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        match parts.iter_mut().rev().find(|(e, _)| *e == v) {
            Some((_, rows)) => rows.push(i as u32),
            None => parts.push((v, vec![i as u32])),
        }
    }
    Some(
        parts
            .into_iter()
            .map(|(e, rows)| (e, UInt32Array::from(rows)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: WindowKind) -> WindowSpec {
        WindowSpec { kind, offset: 0 }
    }

    #[test]
    fn tumble_is_one_slice_per_window() {
        let w = spec(WindowKind::Tumble { size: 10 });
        assert_eq!(w.slice_end(0), 10);
        assert_eq!(w.slice_end(9), 10);
        assert_eq!(w.slice_end(10), 20);
        assert_eq!(w.slice_end(-1), 0);
        let times = Int64Array::from(vec![0, 9, 10, -1]);
        assert_eq!(w.slice_ends(&times).values().to_vec(), vec![10, 10, 20, 0]);
        assert_eq!(w.windows_of_slice(20), vec![20]);
        assert_eq!(w.slices_of_window(20).collect::<Vec<_>>(), vec![20]);
        assert_eq!(w.window_start(20), 10);
    }

    #[test]
    fn hop_windows_share_slices() {
        // Nexmark q5: 10 s windows every 2 s.
        let w = spec(WindowKind::Hop {
            size: 10_000,
            slide: 2_000,
        });
        assert_eq!(w.slice_size(), 2_000);
        assert_eq!(w.slice_end(3_500), 4_000);
        assert_eq!(
            w.windows_of_slice(4_000),
            vec![4_000, 6_000, 8_000, 10_000, 12_000]
        );
        assert_eq!(
            w.slices_of_window(12_000).collect::<Vec<_>>(),
            vec![4_000, 6_000, 8_000, 10_000, 12_000]
        );
        assert_eq!(w.last_window_of_slice(4_000), 12_000);
        // Aggregating q5's windows again: each end is a slice of its own.
        let ends = w.end_grid();
        assert_eq!(ends.slice_end(12_000 - 1), 12_000);
        assert_eq!(ends.windows_of_slice(12_000), vec![12_000]);
    }

    #[test]
    fn a_hop_that_slides_past_its_size_is_refused() {
        let err = spec(WindowKind::Hop {
            size: 2_000,
            slide: 5_000,
        })
        .validate()
        .unwrap_err();
        assert!(
            err.contains("slide (5000 ms) must not be larger than its size (2000 ms)"),
            "{err}"
        );
        spec(WindowKind::Hop {
            size: 5_000,
            slide: 5_000,
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn hop_with_a_slide_that_does_not_divide_the_size() {
        let w = spec(WindowKind::Hop { size: 5, slide: 2 });
        assert_eq!(w.slice_size(), 1);
        // Window ends are multiples of 2, so the slice [3, 4) is in [-1, 4), [1, 6), [3, 8).
        assert_eq!(w.windows_of_slice(4), vec![4, 6, 8]);
        assert_eq!(
            w.slices_of_window(6).collect::<Vec<_>>(),
            vec![2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn cumulate_windows_grow_by_steps() {
        let w = spec(WindowKind::Cumulate { size: 30, step: 10 });
        assert_eq!(w.slice_end(12), 20);
        assert_eq!(w.windows_of_slice(20), vec![20, 30]);
        assert_eq!(w.windows_of_slice(30), vec![30]);
        assert_eq!(w.windows_of_slice(40), vec![40, 50, 60]);
        assert_eq!(w.window_start(50), 30);
        assert_eq!(w.slices_of_window(50).collect::<Vec<_>>(), vec![40, 50]);
        assert!(spec(WindowKind::Cumulate { size: 25, step: 10 })
            .validate()
            .is_err());
    }

    #[test]
    fn offsets_shift_the_grid() {
        let w = WindowSpec {
            kind: WindowKind::Tumble { size: 10 },
            offset: 3,
        };
        assert_eq!(w.slice_end(2), 3);
        assert_eq!(w.slice_end(3), 13);
        assert_eq!(w.window_start(13), 3);
    }
}
