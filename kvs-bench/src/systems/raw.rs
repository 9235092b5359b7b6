//! Raw redb, the same version kvs uses: hand-written tables and index tables, records in
//! bincode 1 (the fastest serde codec for this record that we measured among those already
//! in the tree), old index values read from what `insert` and `remove` return. This is the
//! floor for any layer over redb.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    Database, MultimapTable, MultimapTableDefinition, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition,
};
use serde::Deserialize;

use super::{file_len, hits as hits_of, page_sum, range_hits, Res, Streams, System, Walk};
use crate::data::{Msg, User};

const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
const EMAIL: TableDefinition<&str, u64> = TableDefinition::new("users_email");
const CITY: MultimapTableDefinition<&str, u64> = MultimapTableDefinition::new("users_city");
/// Score → keys: a multimap keeps each score's keys in order, so a range reads in
/// (score, key) order.
const SCORE: MultimapTableDefinition<u64, u64> = MultimapTableDefinition::new("users_score");
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("seq");
const MSGS: TableDefinition<u64, &[u8]> = TableDefinition::new("msgs");
/// One feed: position → message key.
const FEED: TableDefinition<u64, u64> = TableDefinition::new("feed");
/// Message key → position.
const LINK: TableDefinition<u64, u64> = TableDefinition::new("link");
/// The feed's (count, top position).
const WRITER: TableDefinition<&str, (u64, u64)> = TableDefinition::new("writer");

/// A stored user, borrowed: what `put` and `delete` need of the old record.
#[derive(Deserialize)]
struct UserRef<'a> {
    #[allow(dead_code)]
    id: u64,
    email: &'a str,
    city: &'a str,
    score: u64,
}

/// Raw redb.
pub struct Raw {
    db: Database,
    path: PathBuf,
}

impl Raw {
    /// Creates the database at `path`.
    pub fn open(path: &Path) -> Res<Raw> {
        let db = Database::create(path)?;
        let w = db.begin_write()?;
        w.open_table(USERS)?;
        w.open_table(EMAIL)?;
        w.open_multimap_table(CITY)?;
        w.open_multimap_table(SCORE)?;
        w.open_table(SEQ)?;
        w.commit()?;
        Ok(Raw {
            db,
            path: path.to_owned(),
        })
    }

    /// A counter increment, then a durable put of the user with that id, each in a write
    /// transaction of its own: what each of many threads of a raw redb user writes. Returns
    /// the id.
    pub fn seq_then_put(&self, records: u64) -> Res<u64> {
        let w = self.db.begin_write()?;
        let id = seq_in(&w, "users", 1)?;
        w.commit()?;
        self.write(|t| t.put(&crate::data::user(id, records)))?;
        Ok(id)
    }

    fn write<R>(&self, f: impl FnOnce(&mut Tables<'_>) -> Res<R>) -> Res<R> {
        let w = self.db.begin_write()?;
        let out = {
            let mut t = Tables {
                users: w.open_table(USERS)?,
                email: w.open_table(EMAIL)?,
                city: w.open_multimap_table(CITY)?,
                score: w.open_multimap_table(SCORE)?,
                buf: Vec::with_capacity(128),
            };
            f(&mut t)?
        };
        w.commit()?;
        Ok(out)
    }
}

struct Tables<'t> {
    users: Table<'t, u64, &'static [u8]>,
    email: Table<'t, &'static str, u64>,
    city: MultimapTable<'t, &'static str, u64>,
    score: MultimapTable<'t, u64, u64>,
    buf: Vec<u8>,
}

impl Tables<'_> {
    /// Insert or replace, keeping both indexes exact.
    fn put(&mut self, u: &User) -> Res<()> {
        self.buf.clear();
        bincode::serialize_into(&mut self.buf, u)?;
        let old = self.users.insert(u.id, self.buf.as_slice())?;
        let old: Option<UserRef<'_>> = match &old {
            Some(g) => Some(bincode::deserialize(g.value())?),
            None => None,
        };
        if old.as_ref().map(|o| o.email) != Some(u.email.as_str()) {
            if let Some(holder) = self.email.insert(u.email.as_str(), u.id)? {
                if holder.value() != u.id {
                    return Err(format!("duplicate email {}", u.email).into());
                }
            }
            if let Some(o) = &old {
                self.email.remove(o.email)?;
            }
        }
        if old.as_ref().map(|o| o.city) != Some(u.city.as_str()) {
            if let Some(o) = &old {
                self.city.remove(o.city, u.id)?;
            }
            self.city.insert(u.city.as_str(), u.id)?;
        }
        if old.as_ref().map(|o| o.score) != Some(u.score) {
            if let Some(o) = &old {
                self.score.remove(o.score, u.id)?;
            }
            self.score.insert(u.score, u.id)?;
        }
        Ok(())
    }

    fn delete(&mut self, id: u64) -> Res<bool> {
        let Some(old) = self.users.remove(id)? else {
            return Ok(false);
        };
        let old: UserRef<'_> = bincode::deserialize(old.value())?;
        self.email.remove(old.email)?;
        self.city.remove(old.city, id)?;
        self.score.remove(old.score, id)?;
        Ok(true)
    }
}

fn seq_in(w: &redb::WriteTransaction, name: &str, n: usize) -> Res<u64> {
    let mut t = w.open_table(SEQ)?;
    let mut v = 0;
    for _ in 0..n {
        v = t.get(name)?.map_or(0, |g| g.value()) + 1;
        t.insert(name, v)?;
    }
    Ok(v)
}

impl System for Raw {
    fn bulk_insert(&mut self, users: &[User]) -> Res<()> {
        self.write(|t| users.iter().try_for_each(|u| t.put(u)))
    }

    fn durable_insert(&mut self, users: &[User]) -> Res<()> {
        for u in users {
            self.write(|t| t.put(u))?;
        }
        Ok(())
    }

    fn get(&mut self, ids: &[u64]) -> Res<u64> {
        let mut sum = 0;
        for &id in ids {
            let r = self.db.begin_read()?;
            let t = r.open_table(USERS)?;
            if let Some(g) = t.get(id)? {
                let u: User = bincode::deserialize(g.value())?;
                sum += u.id;
            }
        }
        Ok(sum)
    }

    fn unique_lookup(&mut self, emails: &[String]) -> Res<u64> {
        let mut hits = 0;
        for email in emails {
            let r = self.db.begin_read()?;
            let ix = r.open_table(EMAIL)?;
            if let Some(id) = ix.get(email.as_str())? {
                let users = r.open_table(USERS)?;
                let g = users.get(id.value())?.ok_or("dangling email index")?;
                let u: User = bincode::deserialize(g.value())?;
                hits += hits_of([u.email.as_str()], email)?;
            }
        }
        Ok(hits)
    }

    fn index_lookup(&mut self, cities: &[String]) -> Res<u64> {
        let mut hits = 0;
        for city in cities {
            let r = self.db.begin_read()?;
            let ix = r.open_multimap_table(CITY)?;
            let users = r.open_table(USERS)?;
            let mut found = Vec::new();
            for id in ix.get(city.as_str())? {
                let g = users.get(id?.value())?.ok_or("dangling city index")?;
                found.push(bincode::deserialize::<User>(g.value())?);
            }
            hits += hits_of(found.iter().map(|u| u.city.as_str()), city)?;
        }
        Ok(hits)
    }

    fn index_range(&mut self, ranges: &[(u64, u64)]) -> Res<(u64, u64)> {
        let mut total = (0, 0);
        for &(lo, hi) in ranges {
            let r = self.db.begin_read()?;
            let ix = r.open_multimap_table(SCORE)?;
            let users = r.open_table(USERS)?;
            let mut found = Vec::new();
            for entry in ix.range(lo..hi)? {
                let (_, ids) = entry?;
                for id in ids {
                    let g = users.get(id?.value())?.ok_or("dangling score index")?;
                    found.push(bincode::deserialize::<User>(g.value())?);
                }
            }
            let (n, sum) = range_hits(found.iter().map(|u| (u.score, u.id)), lo, hi)?;
            total = (total.0 + n, total.1 + sum);
        }
        Ok(total)
    }

    fn iter_page(&mut self, times: usize, page: usize) -> Res<u64> {
        let mut sum = 0;
        for _ in 0..times {
            let r = self.db.begin_read()?;
            let users = r.open_table(USERS)?;
            let mut newest = Vec::with_capacity(page);
            for entry in users.iter()?.rev().take(page) {
                newest.push(bincode::deserialize::<User>(entry?.1.value())?);
            }
            sum += page_sum(newest.iter().map(|u| u.id), page)?;
        }
        Ok(sum)
    }

    fn scan_all(&mut self) -> Res<(u64, u64)> {
        let r = self.db.begin_read()?;
        let users = r.open_table(USERS)?;
        let mut walk = Walk::ascending();
        for entry in users.iter()? {
            let u: User = bincode::deserialize(entry?.1.value())?;
            walk.step(0, u.id)?;
        }
        Ok((walk.n, walk.key_sum))
    }

    fn indexed_update(&mut self, users: &[User]) -> Res<()> {
        self.bulk_insert(users)
    }

    fn delete(&mut self, ids: &[u64]) -> Res<u64> {
        self.write(|t| {
            let mut deleted = 0;
            for &id in ids {
                deleted += u64::from(t.delete(id)?);
            }
            Ok(deleted)
        })
    }

    fn count(&mut self, times: usize) -> Res<u64> {
        let mut n = 0;
        for _ in 0..times {
            let r = self.db.begin_read()?;
            n = r.open_table(USERS)?.len()?;
        }
        Ok(n)
    }

    fn seq(&mut self, n: usize) -> Res<u64> {
        let w = self.db.begin_write()?;
        let v = seq_in(&w, "bench", n)?;
        w.commit()?;
        Ok(v)
    }

    fn seq_durable(&mut self, n: usize) -> Res<u64> {
        let mut v = 0;
        for _ in 0..n {
            let w = self.db.begin_write()?;
            v = seq_in(&w, "bench_durable", 1)?;
            w.commit()?;
        }
        Ok(v)
    }

    fn file_size(&self) -> Option<u64> {
        file_len(&self.path)
    }

    fn streams(&mut self) -> Option<&mut dyn Streams> {
        Some(self)
    }
}

/// One feed, hand-written: the message table, position → key, key → position, and the
/// feed's count and top position.
impl Streams for Raw {
    fn append(&mut self, feed: &str, msgs: &[Msg]) -> Res<()> {
        let w = self.db.begin_write()?;
        {
            let mut table = w.open_table(MSGS)?;
            let mut positions = w.open_table(FEED)?;
            let mut links = w.open_table(LINK)?;
            let mut writer = w.open_table(WRITER)?;
            let (mut count, mut top) = writer.get(feed)?.map_or((0, 0), |g| g.value());
            let mut buf = Vec::with_capacity(128);
            for m in msgs {
                buf.clear();
                bincode::serialize_into(&mut buf, m)?;
                table.insert(m.id, buf.as_slice())?;
                if links.get(m.id)?.is_none() {
                    top += 1;
                    count += 1;
                    positions.insert(top, m.id)?;
                    links.insert(m.id, top)?;
                }
            }
            writer.insert(feed, (count, top))?;
        }
        w.commit()?;
        Ok(())
    }

    fn take_pages(
        &mut self,
        _feed: &str,
        skip: u64,
        page: usize,
        pages: usize,
    ) -> Res<(u64, Duration)> {
        let mut pos = {
            let r = self.db.begin_read()?;
            let positions = r.open_table(FEED)?;
            let mut pos = 0;
            for entry in positions.iter()?.take(usize::try_from(skip)?) {
                pos = entry?.0.value();
            }
            pos
        };
        let start = Instant::now();
        let mut sum = 0;
        for _ in 0..pages {
            let r = self.db.begin_read()?;
            let positions = r.open_table(FEED)?;
            let table = r.open_table(MSGS)?;
            let mut out = Vec::with_capacity(page);
            for entry in positions.range(pos + 1..)?.take(page) {
                let (p, id) = entry?;
                pos = p.value();
                let g = table.get(id.value())?.ok_or("dangling feed entry")?;
                out.push(bincode::deserialize::<Msg>(g.value())?);
            }
            sum += out.iter().map(|m| m.id).sum::<u64>();
        }
        Ok((sum, start.elapsed()))
    }

    fn remove(&mut self, feed: &str, ids: &[u64]) -> Res<u64> {
        let w = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut positions = w.open_table(FEED)?;
            let mut links = w.open_table(LINK)?;
            let mut writer = w.open_table(WRITER)?;
            let (mut count, top) = writer.get(feed)?.map_or((0, 0), |g| g.value());
            for &id in ids {
                if let Some(pos) = links.remove(id)? {
                    positions.remove(pos.value())?;
                    count -= 1;
                    removed += 1;
                }
            }
            writer.insert(feed, (count, top))?;
        }
        w.commit()?;
        Ok(removed)
    }

    fn len(&mut self, feed: &str) -> Res<u64> {
        let r = self.db.begin_read()?;
        let writer = r.open_table(WRITER)?;
        Ok(writer.get(feed)?.map_or(0, |g| g.value().0))
    }
}
