//! One page of events: the first rows in `(timestamp, id)` order, ascending or
//! descending, kept while batches stream by.
//!
//! A bounded heap whose top is the worst row kept: a row that does not beat it is
//! passed over without a copy. Rows are held as references into their batch's event
//! column, and a batch is let go once none of its rows is kept, so memory follows
//! the page, not the scan.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use arrow::array::{Array, StringArray};

/// A kept row: its sort key and where its event text is.
struct Kept {
    timestamp: i64,
    id: Box<str>,
    batch: usize,
    row: usize,
    descending: bool,
}

impl Kept {
    fn key_cmp(&self, timestamp: i64, id: &str) -> Ordering {
        let order = (self.timestamp, &*self.id).cmp(&(timestamp, id));
        if self.descending {
            order.reverse()
        } else {
            order
        }
    }
}

/// Better rows are smaller, so the heap's top is the worst kept.
impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key_cmp(other.timestamp, &other.id)
    }
}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Kept {}

/// The best `wanted` rows seen so far.
pub(crate) struct Page {
    pub(crate) wanted: usize,
    descending: bool,
    heap: BinaryHeap<Kept>,
    /// Each batch's event column while rows of it are kept, with how many.
    batches: Vec<Option<(StringArray, usize)>>,
}

impl Page {
    pub(crate) fn new(wanted: usize, descending: bool) -> Page {
        Page {
            wanted,
            descending,
            heap: BinaryHeap::new(),
            batches: Vec::new(),
        }
    }

    /// Whether a row at `[start, end)` could still be kept: the page is not full, or
    /// the range reaches past its worst row (an equal time may hold a better id).
    pub(crate) fn could_take(&self, (start, end): (i64, i64)) -> bool {
        match self.heap.peek() {
            Some(worst) if self.heap.len() >= self.wanted => {
                if self.descending {
                    end > worst.timestamp
                } else {
                    start <= worst.timestamp
                }
            }
            _ => self.wanted > 0,
        }
    }

    /// Offers the rows `rows` of one batch.
    pub(crate) fn offer(
        &mut self,
        timestamps: &arrow::array::TimestampMillisecondArray,
        ids: &StringArray,
        events: &StringArray,
        rows: impl Iterator<Item = usize>,
    ) {
        if self.wanted == 0 {
            return;
        }
        let batch = self.batches.len();
        let mut kept_here = 0;
        for row in rows {
            // The materializer writes every row's time and id.
            if timestamps.is_null(row) || ids.is_null(row) {
                continue;
            }
            let (timestamp, id) = (timestamps.value(row), ids.value(row));
            if self.heap.len() >= self.wanted {
                let worst = self.heap.peek().expect("a full page");
                if worst.key_cmp(timestamp, id) != Ordering::Greater {
                    continue;
                }
                let out = self.heap.pop().expect("a full page");
                if out.batch == batch {
                    kept_here -= 1;
                } else {
                    self.release(out.batch);
                }
            }
            self.heap.push(Kept {
                timestamp,
                id: id.into(),
                batch,
                row,
                descending: self.descending,
            });
            kept_here += 1;
        }
        // A batch none of whose rows is kept is not held.
        self.batches
            .push((kept_here > 0).then(|| (events.clone(), kept_here)));
    }

    /// Takes in the rows another page kept (of other files, read at the same time).
    pub(crate) fn absorb(&mut self, other: Page) {
        if self.wanted == 0 {
            return;
        }
        let base = self.batches.len();
        let mut live = vec![0usize; other.batches.len()];
        for kept in other.heap.into_sorted_vec() {
            if self.heap.len() >= self.wanted {
                let worst = self.heap.peek().expect("a full page");
                // Best first: once one is not better, none of the rest is.
                if worst.key_cmp(kept.timestamp, &kept.id) != Ordering::Greater {
                    break;
                }
                // Theirs come best first, so the worst is always one of ours.
                let out = self.heap.pop().expect("a full page");
                self.release(out.batch);
            }
            live[kept.batch] += 1;
            self.heap.push(Kept {
                batch: base + kept.batch,
                ..kept
            });
        }
        for (batch, n) in other.batches.into_iter().zip(live) {
            self.batches
                .push(batch.filter(|_| n > 0).map(|(events, _)| (events, n)));
        }
    }

    fn release(&mut self, batch: usize) {
        if let Some(slot) = self.batches.get_mut(batch) {
            if let Some((_, n)) = slot {
                *n -= 1;
                if *n == 0 {
                    *slot = None;
                }
            }
        }
    }

    /// Calls `each` with the kept rows, best first, after the first `skip`: each
    /// event's text, time and id.
    pub(crate) fn finish(self, skip: usize, mut each: impl FnMut(&str, i64, &str)) {
        let batches = self.batches;
        for kept in self.heap.into_sorted_vec().into_iter().skip(skip) {
            if let Some(Some((events, _))) = batches.get(kept.batch) {
                each(events.value(kept.row), kept.timestamp, &kept.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMillisecondArray;

    /// One batch of rows at `times`, ids `<time>-<tag>`.
    fn batch(times: &[i64], tag: &str) -> (TimestampMillisecondArray, StringArray, StringArray) {
        let ids: Vec<String> = times.iter().map(|t| format!("{t:04}-{tag}")).collect();
        let events: Vec<String> = ids.iter().map(|id| format!("event {id}")).collect();
        (
            TimestampMillisecondArray::from(times.to_vec()),
            StringArray::from(ids),
            StringArray::from(events),
        )
    }

    fn offer(page: &mut Page, times: &[i64], tag: &str) {
        let (t, i, e) = batch(times, tag);
        page.offer(&t, &i, &e, 0..times.len());
    }

    fn held(page: &Page) -> usize {
        page.batches.iter().filter(|b| b.is_some()).count()
    }

    fn events(page: Page, skip: usize) -> Vec<String> {
        let mut out = Vec::new();
        page.finish(skip, |e, _, _| out.push(e.to_string()));
        out
    }

    /// Newest first over rows arriving oldest first (a file read forwards): every
    /// batch beats the last, and the batches whose rows all left are let go.
    #[test]
    fn a_page_keeps_the_best_rows_and_only_their_batches() {
        let mut page = Page::new(3, true);
        for b in 0..10 {
            offer(&mut page, &[b * 10, b * 10 + 1], "a");
            assert!(held(&page) <= 2, "batch {b}: {} held", held(&page));
        }
        assert_eq!(events(page, 1), ["event 0090-a", "event 0081-a"]);

        // Oldest first: later batches are passed over without being held.
        let mut page = Page::new(2, false);
        offer(&mut page, &[5, 7, 9], "a");
        offer(&mut page, &[6, 6, 10], "b");
        offer(&mut page, &[11, 12], "c");
        assert_eq!(held(&page), 2);
        assert!(!page.could_take((7, 20)), "the worst kept is 6");
        assert!(page.could_take((6, 20)), "a 6 with a smaller id could come");
        assert_eq!(events(page, 0), ["event 0005-a", "event 0006-b"]);
    }

    /// Another file's page taken in: its better rows replace ours, whose batches
    /// are let go, and its batches without a kept row are not held.
    #[test]
    fn absorbing_a_page_keeps_the_best_of_both() {
        let mut ours = Page::new(2, true);
        offer(&mut ours, &[100], "a");
        offer(&mut ours, &[101], "a");
        let mut theirs = Page::new(2, true);
        offer(&mut theirs, &[50], "b");
        offer(&mut theirs, &[200], "b");
        ours.absorb(theirs);
        assert_eq!(held(&ours), 2, "101 of ours and 200 of theirs");
        let mut more = Page::new(2, true);
        offer(&mut more, &[300, 250], "c");
        ours.absorb(more);
        assert_eq!(held(&ours), 1, "only the batch with 300 and 250");
        assert_eq!(events(ours, 0), ["event 0300-c", "event 0250-c"]);
        assert!(!Page::new(0, true).could_take((0, i64::MAX)));
    }
}
