//! An undo log over a write transaction: what one caller of a group commit wrote in the
//! group's shared transaction can be rolled back alone, so that a write or transaction that
//! fails takes out only itself (a savepoint per caller, which redb cannot give once a
//! transaction has written).
//!
//! It wraps a [`WriteTx`], passes every call through, and remembers each key's value before
//! the first write to it; rolling back puts those values back, newest first.

use crate::backend::{Cursor, KeyRange, ManyVisitor, ReadTx, Visitor, WriteTx};
use crate::error::{Error, Result};

/// A write transaction that remembers how to undo what was written through it.
pub(crate) struct Undo<'a> {
    w: &'a mut dyn WriteTx,
    /// Each write's table, key and the value it replaced (`None`: there was none), oldest
    /// first.
    log: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
    /// A call was made that cannot be undone (a dropped or upgraded table).
    irreversible: bool,
}

impl<'a> Undo<'a> {
    pub(crate) fn new(w: &'a mut dyn WriteTx) -> Undo<'a> {
        Undo {
            w,
            log: Vec::new(),
            irreversible: false,
        }
    }

    fn remember(&mut self, table: &str, key: &[u8], old: Option<Vec<u8>>) {
        self.log.push((table.to_owned(), key.to_vec(), old));
    }

    /// Puts back every value written through this log, newest first: the transaction then
    /// holds what it held before. An error means the transaction holds something else, and
    /// must not commit.
    pub(crate) fn roll_back(mut self) -> Result<()> {
        if self.irreversible {
            return Err(Error::storage(
                "kvs",
                "a write of a group dropped or upgraded a table, which cannot be rolled back alone",
            ));
        }
        while let Some((table, key, old)) = self.log.pop() {
            match old {
                Some(value) => self.w.put(&table, &key, &value)?,
                None => self.w.delete(&table, &key)?,
            }
        }
        Ok(())
    }
}

impl ReadTx for Undo<'_> {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.w.get(table, key)
    }

    fn get_with(
        &self,
        table: &str,
        key: &[u8],
        visit: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<bool> {
        self.w.get_with(table, key, visit)
    }

    fn get_many(&self, table: &str, keys: &[&[u8]], visit: &mut ManyVisitor<'_>) -> Result<()> {
        self.w.get_many(table, keys, visit)
    }

    fn scan(
        &self,
        table: &str,
        range: KeyRange<'_>,
        reverse: bool,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.w.scan(table, range, reverse, visit)
    }

    fn cursor(&self, table: &str, range: KeyRange<'_>) -> Result<Option<Box<dyn Cursor>>> {
        self.w.cursor(table, range)
    }

    fn len(&self, table: &str) -> Result<u64> {
        self.w.len(table)
    }

    fn tables(&self) -> Result<Vec<String>> {
        self.w.tables()
    }

    fn stored_bytes(&self, table: &str) -> Result<Option<u64>> {
        self.w.stored_bytes(table)
    }
}

impl WriteTx for Undo<'_> {
    fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.w.insert(table, key, value)?;
        self.remember(table, key, old.clone());
        Ok(old)
    }

    fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let old = self.w.remove(table, key)?;
        if old.is_some() {
            self.remember(table, key, old.clone());
        }
        Ok(old)
    }

    fn put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        // The value it replaces is needed to undo it.
        let old = self.w.insert(table, key, value)?;
        self.remember(table, key, old);
        Ok(())
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<()> {
        if let Some(old) = self.w.remove(table, key)? {
            self.remember(table, key, Some(old));
        }
        Ok(())
    }

    fn prefetch(&mut self, keys: &mut dyn Iterator<Item = (&str, &[u8])>) -> Result<()> {
        self.w.prefetch(keys)
    }

    fn create_table(&mut self, table: &str) -> Result<()> {
        // An empty table left behind by a rolled-back caller changes no record; kvs's calls
        // that make tables (the open) never run in a group.
        self.w.create_table(table)
    }

    fn drop_table(&mut self, table: &str) -> Result<bool> {
        self.irreversible = true;
        self.w.drop_table(table)
    }

    fn upgrade_tables(&mut self) -> Result<()> {
        self.irreversible = true;
        self.w.upgrade_tables()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::{Bound, RangeBounds};

    use super::*;

    /// A write transaction over a map, enough for the log's own calls.
    #[derive(Default)]
    struct Map(BTreeMap<(String, Vec<u8>), Vec<u8>>);

    impl ReadTx for Map {
        fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(&(table.to_owned(), key.to_vec())).cloned())
        }
        fn scan(
            &self,
            table: &str,
            (start, end): KeyRange<'_>,
            reverse: bool,
            visit: &mut Visitor<'_>,
        ) -> Result<()> {
            let mut entries: Vec<(&[u8], &[u8])> = self
                .0
                .iter()
                .filter(|((t, k), _)| {
                    t == table && RangeBounds::<&[u8]>::contains(&(start, end), &k.as_slice())
                })
                .map(|((_, k), v)| (k.as_slice(), v.as_slice()))
                .collect();
            if reverse {
                entries.reverse();
            }
            for (key, value) in entries {
                if !visit(key, value)? {
                    break;
                }
            }
            Ok(())
        }
        fn len(&self, table: &str) -> Result<u64> {
            Ok(self.0.keys().filter(|(t, _)| t == table).count() as u64)
        }
        fn tables(&self) -> Result<Vec<String>> {
            let mut names: Vec<String> = self.0.keys().map(|(t, _)| t.clone()).collect();
            names.dedup();
            Ok(names)
        }
        fn stored_bytes(&self, _: &str) -> Result<Option<u64>> {
            Ok(None)
        }
    }

    impl WriteTx for Map {
        fn insert(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self
                .0
                .insert((table.to_owned(), key.to_vec()), value.to_vec()))
        }
        fn remove(&mut self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self.0.remove(&(table.to_owned(), key.to_vec())))
        }
        fn create_table(&mut self, _: &str) -> Result<()> {
            Ok(())
        }
        fn drop_table(&mut self, table: &str) -> Result<bool> {
            let before = self.0.len();
            self.0.retain(|(t, _), _| t != table);
            Ok(self.0.len() < before)
        }
    }

    /// Rolling back restores replaced, removed and new keys alike, and keeps what was
    /// written before the log.
    #[test]
    fn rolling_back_restores_what_was_there() -> Result<()> {
        let mut w = Map::default();
        w.insert("t", b"kept", b"1")?;
        w.insert("t", b"replaced", b"old")?;
        w.insert("t", b"removed", b"gone?")?;
        let mut undo = Undo::new(&mut w);
        undo.put("t", b"replaced", b"new")?;
        undo.insert("t", b"replaced", b"newer")?;
        assert_eq!(undo.remove("t", b"removed")?, Some(b"gone?".to_vec()));
        undo.delete("t", b"absent")?;
        undo.put("t", b"added", b"x")?;
        undo.put("u", b"other table", b"y")?;
        assert_eq!(undo.get("t", b"replaced")?, Some(b"newer".to_vec()));
        undo.roll_back()?;
        assert_eq!(w.get("t", b"kept")?, Some(b"1".to_vec()));
        assert_eq!(w.get("t", b"replaced")?, Some(b"old".to_vec()));
        assert_eq!(w.get("t", b"removed")?, Some(b"gone?".to_vec()));
        assert_eq!(w.get("t", b"added")?, None);
        assert_eq!((w.len("t")?, w.len("u")?), (3, 0));
        // Reads through the log see the same: its scan and table list pass through.
        let undo = Undo::new(&mut w);
        let mut keys = Vec::new();
        undo.scan(
            "t",
            (Bound::Unbounded, Bound::Unbounded),
            true,
            &mut |k, _| {
                keys.push(k.to_vec());
                Ok(true)
            },
        )?;
        assert_eq!(
            keys,
            [b"replaced".to_vec(), b"removed".to_vec(), b"kept".to_vec()]
        );
        assert_eq!(undo.tables()?, ["t"]);
        Ok(())
    }

    /// A dropped table cannot be put back: rolling back says so, and the transaction must
    /// not commit.
    #[test]
    fn a_dropped_table_cannot_be_rolled_back() -> Result<()> {
        let mut w = Map::default();
        w.insert("t", b"k", b"v")?;
        let mut undo = Undo::new(&mut w);
        undo.drop_table("t")?;
        assert!(undo.roll_back().is_err());
        Ok(())
    }
}
