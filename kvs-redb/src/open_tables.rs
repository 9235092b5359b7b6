//! The tables a transaction has open, kept for the rest of the transaction so that each is
//! opened once.

use kvs_core::Result;

/// A table name, kept inline when short (as kvs's names are), so that remembering an open
/// table allocates nothing.
enum Name {
    Short(u8, [u8; Name::SHORT]),
    Long(String),
}

impl Name {
    const SHORT: usize = 46;

    fn new(name: &str) -> Name {
        match u8::try_from(name.len()) {
            Ok(len) if name.len() <= Name::SHORT => {
                let mut bytes = [0; Name::SHORT];
                bytes[..name.len()].copy_from_slice(name.as_bytes());
                Name::Short(len, bytes)
            }
            _ => Name::Long(name.to_owned()),
        }
    }

    fn is(&self, name: &str) -> bool {
        match self {
            Name::Short(len, bytes) => &bytes[..usize::from(*len)] == name.as_bytes(),
            Name::Long(long) => long == name,
        }
    }
}

/// Where [`OpenTables`] keeps a table.
#[derive(Clone, Copy)]
enum At {
    Inline(usize),
    More(usize),
}

/// The tables a transaction has opened, by name. A transaction touches few tables, so a list
/// beats a hash map, and the first few live inline: a read of up to three tables allocates
/// nothing to remember them.
pub(crate) struct OpenTables<T> {
    inline: [Option<(Name, T)>; 3],
    more: Vec<(Name, T)>,
}

impl<T> OpenTables<T> {
    pub(crate) fn new() -> Self {
        OpenTables {
            inline: [None, None, None],
            more: Vec::new(),
        }
    }

    /// Where the table `name` is kept, if it is remembered.
    fn find(&self, name: &str) -> Option<At> {
        if let Some(i) = self
            .inline
            .iter()
            .position(|slot| slot.as_ref().is_some_and(|(n, _)| n.is(name)))
        {
            return Some(At::Inline(i));
        }
        self.more.iter().position(|(n, _)| n.is(name)).map(At::More)
    }

    /// The table kept at `at`, which [`OpenTables::find`] gave.
    fn at(&mut self, at: At) -> &mut T {
        match at {
            At::Inline(i) => &mut self.inline[i].as_mut().expect("a filled slot").1,
            At::More(i) => &mut self.more[i].1,
        }
    }

    /// The open table `name`, if it is remembered.
    #[inline]
    pub(crate) fn get(&mut self, name: &str) -> Option<&mut T> {
        let at = self.find(name)?;
        Some(self.at(at))
    }

    /// The open table `name`, or the one `open` opens, remembered for the next call.
    pub(crate) fn get_or_open(
        &mut self,
        name: &str,
        open: impl FnOnce() -> Result<T>,
    ) -> Result<&mut T> {
        match self.find(name) {
            Some(at) => Ok(self.at(at)),
            None => Ok(self.remember(name, open()?)),
        }
    }

    /// Remembers `table`, just opened, as `name`, which is not remembered yet.
    pub(crate) fn remember(&mut self, name: &str, table: T) -> &mut T {
        let entry = (Name::new(name), table);
        if let Some(slot) = self.inline.iter_mut().find(|slot| slot.is_none()) {
            return &mut slot.insert(entry).1;
        }
        self.more.push(entry);
        &mut self.more.last_mut().expect("just pushed").1
    }

    /// Forgets (and so closes) the table `name`.
    pub(crate) fn close(&mut self, name: &str) {
        for slot in &mut self.inline {
            if slot.as_ref().is_some_and(|(n, _)| n.is(name)) {
                *slot = None;
            }
        }
        self.more.retain(|(n, _)| !n.is(name));
    }
}
