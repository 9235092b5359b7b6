//! Queries beyond exact match: ranges of an indexed field's values, counts of a value, and
//! lazy iteration in key or (value, key) order from either end, read a page at a time.

use std::collections::VecDeque;
use std::ops::{Bound, Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

use crate::arg::{Fit, IndexArg, ValueKind, ANY};
use crate::backend::{Cursor, ReadTx};
use crate::error::{Error, Result};
use crate::key::KeyType;
use crate::record;
use crate::table::{IndexMeta, Table};
use crate::write::{self, prefix_end};

/// A range's start and end, encoded, each with how it fits the value type.
#[doc(hidden)]
pub type EncodedBounds = (Bound<(Vec<u8>, Fit)>, Bound<(Vec<u8>, Fit)>);

/// A range of an indexed field's values for `index_range` and `index_iter`: `a..b`, `a..=b`,
/// `a..`, `..b`, `..=b`, `..` and `(Bound, Bound)`, of the values `index` takes (any integer
/// type for an integer field, `&str` for a `String` field, tuples of these). A bound outside
/// the field's type clamps: `..300` on a `u8` field is every value.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a range of index values",
    label = "not a range of index values",
    note = "pass a range (a..b, a..=b, a.., ..b, ..=b, .., or a (Bound, Bound) pair) of values of the field's kind"
)]
pub trait IndexRange: ValueKind {
    /// The start and end bounds, encoded as values of `ty`.
    #[doc(hidden)]
    fn encode_bounds(&self, ty: &KeyType) -> EncodedBounds;
}

fn encode<V: IndexArg + ?Sized>(bound: Bound<&V>, ty: &KeyType) -> Bound<(Vec<u8>, Fit)> {
    let mut out = Vec::new();
    match bound {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(v) => {
            let fit = v.encode_bound(ty, &mut out);
            Bound::Included((out, fit))
        }
        Bound::Excluded(v) => {
            let fit = v.encode_bound(ty, &mut out);
            Bound::Excluded((out, fit))
        }
    }
}

macro_rules! index_range {
    ($($range:ty),*) => {$(
        impl<V: IndexArg> IndexRange for $range {
            fn encode_bounds(&self, ty: &KeyType) -> EncodedBounds {
                use std::ops::RangeBounds;
                (encode(self.start_bound(), ty), encode(self.end_bound(), ty))
            }
        }
        impl<V: IndexArg> ValueKind for $range {
            const KIND: u64 = V::KIND;
        }
    )*};
}

index_range!(
    Range<V>,
    RangeInclusive<V>,
    RangeFrom<V>,
    RangeTo<V>,
    RangeToInclusive<V>,
    (Bound<V>, Bound<V>)
);

impl IndexRange for RangeFull {
    fn encode_bounds(&self, _ty: &KeyType) -> EncodedBounds {
        (Bound::Unbounded, Bound::Unbounded)
    }
}

impl ValueKind for RangeFull {
    const KIND: u64 = ANY;
}

/// An index range encoded already as its field's type, for a call that runs on another
/// thread than its caller's (`AsyncKvs`). Its kind is [`ANY`]: the caller's own range was
/// checked against the field at compile time.
#[cfg(feature = "tokio")]
#[derive(Clone)]
pub(crate) struct EncodedRange(pub(crate) EncodedBounds);

#[cfg(feature = "tokio")]
impl IndexRange for EncodedRange {
    fn encode_bounds(&self, _ty: &KeyType) -> EncodedBounds {
        self.0.clone()
    }
}

#[cfg(feature = "tokio")]
impl ValueKind for EncodedRange {
    const KIND: u64 = ANY;
}

/// A range of encoded keys, owned; `None` for a range that holds nothing.
pub(crate) type OwnedRange = Option<(Bound<Vec<u8>>, Bound<Vec<u8>>)>;

/// The range of entries of the index table of `ix` whose values lie in `range`: a unique
/// index is keyed by the value, another by `value ++ key`, so a value's entries are the
/// prefix range of its encoding.
pub(crate) fn index_scan_range(ix: &IndexMeta, range: &impl IndexRange) -> OwnedRange {
    let (start, end) = range.encode_bounds(&(ix.value_type)());
    index_entries_range(ix.unique, start, end)
}

/// [`index_scan_range`] on encoded bounds, for an index that is `unique` or not.
pub(crate) fn index_entries_range(
    unique: bool,
    start: Bound<(Vec<u8>, Fit)>,
    end: Bound<(Vec<u8>, Fit)>,
) -> OwnedRange {
    let start = match start {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included((v, Fit::Exact | Fit::Below)) | Bound::Excluded((v, Fit::Below)) => {
            Bound::Included(v)
        }
        Bound::Excluded((v, Fit::Exact)) if unique => Bound::Excluded(v),
        Bound::Excluded((v, Fit::Exact)) | Bound::Included((v, Fit::Above)) => {
            Bound::Included(prefix_end(&v)?)
        }
        Bound::Excluded((v, Fit::Above)) => Bound::Included(prefix_end(&v)?),
    };
    let end = match end {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included((v, Fit::Exact)) if unique => Bound::Included(v),
        Bound::Included((v, Fit::Exact | Fit::Above)) | Bound::Excluded((v, Fit::Above)) => {
            prefix_end(&v).map_or(Bound::Unbounded, Bound::Excluded)
        }
        Bound::Excluded((v, Fit::Exact)) => Bound::Excluded(v),
        Bound::Included((v, Fit::Below)) | Bound::Excluded((v, Fit::Below)) => {
            if v.is_empty() {
                return None;
            }
            Bound::Excluded(v)
        }
    };
    Some((start, end))
}

/// The records of `T` whose value for index `ix` lies in `range`, in (value, key) order:
/// one scan of the index entries, then one batched read of the records (`index_range`).
pub(crate) fn index_range_records<T: Table>(
    r: &dyn ReadTx,
    ix: &IndexMeta,
    range: OwnedRange,
) -> Result<Vec<T>> {
    let Some(range) = range else {
        return Ok(Vec::new());
    };
    Ok(index_page(r, ix, range, usize::MAX, false)?.0)
}

/// The records of the first `limit` entries of index `ix` in `range`, in (value, key) order
/// (from the range's end, in the reverse order, when `back`), and, when it stopped at
/// `limit`, the last entry's key (where a next page starts, or ends when `back`): a page of
/// `AsyncKvs::index_stream` or `index_stream_rev`, or a whole `index_range` with no limit.
pub(crate) fn index_page<T: Table>(
    r: &dyn ReadTx,
    ix: &IndexMeta,
    (start, end): (Bound<Vec<u8>>, Bound<Vec<u8>>),
    limit: usize,
    back: bool,
) -> Result<(Vec<T>, Option<Vec<u8>>)> {
    let value_type = (ix.value_type)();
    let mut keys = record::KeyList::new();
    let mut taken = 0;
    let mut last = None;
    let range = (
        start.as_ref().map(Vec::as_slice),
        end.as_ref().map(Vec::as_slice),
    );
    r.scan(ix.table, range, back, &mut |entry, value| {
        keys.push(record_key_of(
            ix.table,
            ix.field,
            ix.unique,
            &value_type,
            entry,
            value,
        )?);
        taken += 1;
        if taken == limit {
            last = Some(entry.to_vec());
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok((record::indexed_records(r, ix, &keys)?, last))
}

/// How many records hold `value` in index `ix`: index keys only, no record read.
pub(crate) fn index_count(r: &dyn ReadTx, ix: &IndexMeta, value: &impl IndexArg) -> Result<u64> {
    let mut prefix = crate::scratch::Scratch::new();
    if !value.encode_as(&(ix.value_type)(), &mut prefix) {
        return Ok(0);
    }
    let mut n = 0;
    write::index_keys(r, ix.table, ix.unique, &prefix, &mut |_| {
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// The reader an iterator reads through: a snapshot of its own, or one it borrows.
pub(crate) enum Source<'a> {
    Owned(Box<dyn ReadTx + Send + 'a>),
    Borrowed(&'a dyn ReadTx),
}

impl Source<'_> {
    fn get(&self) -> &dyn ReadTx {
        match self {
            Source::Owned(r) => &**r,
            Source::Borrowed(r) => *r,
        }
    }
}

/// The first page a lazy scan reads from an end, and the largest: pages grow from small (so
/// that taking a few elements costs a few reads) to large (so that a long walk makes few
/// calls).
const FIRST_PAGE: usize = 16;
const LARGEST_PAGE: usize = 1024;

/// What a lazy scan makes of each entry `(key, value)` it reads.
pub(crate) type Make<'m, X> = dyn FnMut(&dyn ReadTx, &[u8], &[u8]) -> Result<X> + 'm;

/// Items made from the entries of one table in a range, read a page at a time from either
/// end and never twice: each page moves that end's bound past what it read. Items are made
/// inside the scan, from the engine's lent bytes, so no entry is copied.
///
/// Where the reader has a cursor ([`ReadTx::cursor`]: redb outside a write transaction), the
/// walk steps it instead, one entry a step from either end, with no page read ahead and no
/// seek but the first.
pub(crate) struct Pages<X> {
    table: String,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    empty: bool,
    front: VecDeque<X>,
    back: VecDeque<X>,
    front_page: usize,
    back_page: usize,
    cursor: Walk,
}

/// Whether a lazy scan walks a cursor.
enum Walk {
    /// Not asked yet: the first read asks the reader for one.
    Untried,
    Cursor(Box<dyn Cursor>),
    /// The reader has none: pages of `scan`.
    Pages,
}

impl<X> Pages<X> {
    pub(crate) fn new(table: &str, range: OwnedRange) -> Self {
        let (start, end, empty) = match range {
            Some((start, end)) => (start, end, false),
            None => (Bound::Unbounded, Bound::Unbounded, true),
        };
        Pages {
            table: table.to_owned(),
            start,
            end,
            empty,
            front: VecDeque::new(),
            back: VecDeque::new(),
            front_page: FIRST_PAGE,
            back_page: FIRST_PAGE,
            cursor: Walk::Untried,
        }
    }

    /// The reader's cursor over the range, asked for at the first read.
    #[inline]
    fn cursor(&mut self, r: &dyn ReadTx) -> Result<Option<&mut Box<dyn Cursor>>> {
        if matches!(self.cursor, Walk::Untried) {
            self.cursor = match r.cursor(&self.table, self.range())? {
                Some(cursor) if !self.empty => Walk::Cursor(cursor),
                _ => Walk::Pages,
            };
        }
        Ok(match &mut self.cursor {
            Walk::Cursor(cursor) => Some(cursor),
            _ => None,
        })
    }

    fn range(&self) -> crate::backend::KeyRange<'_> {
        (
            self.start.as_ref().map(Vec::as_slice),
            self.end.as_ref().map(Vec::as_slice),
        )
    }

    /// Up to `size` items from the cursor's end, into that end's buffer.
    fn fill_from_cursor(
        cursor: &mut dyn Cursor,
        r: &dyn ReadTx,
        back: bool,
        size: usize,
        into: &mut VecDeque<X>,
        make: &mut Make<'_, X>,
    ) -> Result<()> {
        for _ in 0..size {
            let Some((k, v)) = cursor.next_entry(back)? else {
                break;
            };
            into.push_back(make(r, k, v)?);
        }
        Ok(())
    }

    /// Reads the next page at the front (or the back, when `back`) into that end's buffer,
    /// which is empty.
    fn fill(&mut self, r: &dyn ReadTx, back: bool, make: &mut Make<'_, X>) -> Result<()> {
        if self.empty {
            return Ok(());
        }
        let size = if back {
            self.back_page
        } else {
            self.front_page
        };
        if back {
            self.back_page = (size * 3).min(LARGEST_PAGE);
        } else {
            self.front_page = (size * 3).min(LARGEST_PAGE);
        }
        let Pages {
            table,
            start,
            end,
            front,
            back: back_items,
            cursor,
            ..
        } = self;
        let page = if back { back_items } else { front };
        if let Walk::Cursor(cursor) = cursor {
            return Self::fill_from_cursor(&mut **cursor, r, back, size, page, make);
        }
        let mut last: Vec<u8> = Vec::new();
        let mut read = 0;
        let range = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        r.scan(table, range, back, &mut |k, v| {
            page.push_back(make(r, k, v)?);
            read += 1;
            last.clear();
            last.extend_from_slice(k);
            Ok(read < size)
        })?;
        if read < size {
            // This end has reached the other: nothing lies between the two bounds any more.
            self.empty = true;
        }
        if read > 0 {
            if back {
                self.end = Bound::Excluded(last);
            } else {
                self.start = Bound::Excluded(last);
            }
        }
        Ok(())
    }

    /// The next item from one end, out of that end's page; what the other end read already
    /// lies after everything this end can still read, so it comes last. (`Iter` steps the
    /// cursor itself, where there is one, and comes here only for pages.)
    fn next(&mut self, r: &dyn ReadTx, back: bool, make: &mut Make<'_, X>) -> Result<Option<X>> {
        if (if back { &self.back } else { &self.front }).is_empty() {
            self.fill(r, back, make)?;
        }
        Ok(if back {
            self.back.pop_front().or_else(|| self.front.pop_back())
        } else {
            self.front.pop_front().or_else(|| self.back.pop_back())
        })
    }

    /// Everything one end holds, reading a page there first if it holds nothing, in that
    /// end's order; what the other end holds once this end has met it.
    pub(crate) fn take_page(
        &mut self,
        r: &dyn ReadTx,
        back: bool,
        make: &mut Make<'_, X>,
    ) -> Result<Vec<X>> {
        self.cursor(r)?;
        if (if back { &self.back } else { &self.front }).is_empty() {
            self.fill(r, back, make)?;
        }
        let (own, other) = if back {
            (&mut self.back, &mut self.front)
        } else {
            (&mut self.front, &mut self.back)
        };
        if own.is_empty() {
            Ok(other.drain(..).rev().collect())
        } else {
            Ok(own.drain(..).collect())
        }
    }
}

/// The record key an index entry names: a unique index maps the value to the key, another
/// holds `value ++ key` (whose value is skipped by its type).
pub(crate) fn record_key_of<'e>(
    table: &str,
    field: &str,
    unique: bool,
    value_type: &KeyType,
    entry: &'e [u8],
    value: &'e [u8],
) -> Result<&'e [u8]> {
    if unique {
        return Ok(value);
    }
    let mut rest = entry;
    value_type.skip(&mut rest).ok_or_else(|| {
        Error::corrupt(
            table,
            value_type.render(entry),
            format!("an entry of the index on {field} does not decode"),
        )
    })?;
    Ok(rest)
}

/// Records of `T` in key order, read lazily a page at a time: `iter` (and `.rev()` from the
/// newest end). Made by `Kvs::iter`, `Snapshot::iter` and `Tx::iter`.
pub struct Iter<'a, T> {
    source: Source<'a>,
    /// Each record decoded (or its error, yielded in its place).
    pages: Pages<Result<T>>,
    failed: bool,
}

impl<'a, T: Table> Iter<'a, T> {
    pub(crate) fn new(source: Source<'a>, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Self {
        Iter {
            source,
            pages: Pages::new(T::META.name, Some(range)),
            failed: false,
        }
    }

    #[inline]
    fn step(&mut self, back: bool) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        let r = self.source.get();
        // A cursor's entry is decoded straight from the engine's bytes: nothing is read ahead
        // or moved through a buffer.
        let result = match self.pages.cursor(r) {
            Ok(Some(cursor)) => match cursor.next_entry(back) {
                Ok(Some((key, bytes))) => Some(record::decode(bytes, key)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            },
            Ok(None) => self
                .pages
                .next(r, back, &mut |_, key, bytes| Ok(record::decode(bytes, key)))
                .unwrap_or_else(|e| Some(Err(e))),
            Err(e) => Some(Err(e)),
        };
        self.failed = matches!(result, Some(Err(_)));
        result
    }
}

impl<T: Table> Iterator for Iter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.step(false)
    }
}

impl<T: Table> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Result<T>> {
        self.step(true)
    }
}

impl<T> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("table", &self.pages.table)
            .finish_non_exhaustive()
    }
}

/// Records of `T` whose indexed field lies in a range, in (value, key) order, read lazily:
/// `index_iter` (and `.rev()`). Each page of index entries fetches its records in one batched
/// read (`ReadTx::get_many`). Made by `Kvs::index_iter`, `Snapshot::index_iter` and
/// `Tx::index_iter`.
pub struct IndexIter<'a, T> {
    source: Source<'a>,
    /// The record keys the index entries name.
    pages: Pages<Vec<u8>>,
    ix: &'static IndexMeta,
    /// Records fetched at each end, in that end's order.
    front: VecDeque<T>,
    back: VecDeque<T>,
    failed: bool,
}

impl<'a, T: Table> IndexIter<'a, T> {
    pub(crate) fn new(source: Source<'a>, ix: &'static IndexMeta, range: OwnedRange) -> Self {
        IndexIter {
            source,
            pages: Pages::new(ix.table, range),
            ix,
            front: VecDeque::new(),
            back: VecDeque::new(),
            failed: false,
        }
    }

    fn step(&mut self, back: bool) -> Option<Result<T>> {
        if self.failed {
            return None;
        }
        let result = self.step_inner(back).transpose();
        self.failed = matches!(result, Some(Err(_)));
        result
    }

    fn step_inner(&mut self, back: bool) -> Result<Option<T>> {
        if (if back { &self.back } else { &self.front }).is_empty() {
            self.fetch(back)?;
        }
        let (own, other) = if back {
            (&mut self.back, &mut self.front)
        } else {
            (&mut self.front, &mut self.back)
        };
        Ok(own.pop_front().or_else(|| other.pop_back()))
    }

    /// Reads a page of index entries at one end and their records, in one batched read.
    fn fetch(&mut self, back: bool) -> Result<()> {
        let r = self.source.get();
        let ix = self.ix;
        let value_type = (ix.value_type)();
        let keys = self.pages.take_page(r, back, &mut |_, entry, value| {
            record_key_of(ix.table, ix.field, ix.unique, &value_type, entry, value)
                .map(<[u8]>::to_vec)
        })?;
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let own = if back {
            &mut self.back
        } else {
            &mut self.front
        };
        r.get_many(T::META.name, &refs, &mut |i, bytes| match bytes {
            Some(bytes) => {
                own.push_back(record::decode(bytes, refs[i])?);
                Ok(())
            }
            None => Err(Error::corrupt(
                ix.table,
                (T::META.key_type)().render(refs[i]),
                format!("the index on {} points at a missing record", ix.field),
            )),
        })
    }
}

impl<T: Table> Iterator for IndexIter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        self.step(false)
    }
}

impl<T: Table> DoubleEndedIterator for IndexIter<'_, T> {
    fn next_back(&mut self) -> Option<Result<T>> {
        self.step(true)
    }
}

impl<T> std::fmt::Debug for IndexIter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexIter")
            .field("index", &self.ix.table)
            .finish_non_exhaustive()
    }
}
