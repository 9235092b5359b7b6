//! kvs, on a redb file or in memory, used as its README shows.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kvs::{Dir, Kvs, Reader};

use super::{file_len, hits as hits_of, page_sum, range_hits, Res, Streams, System, Walk};
use crate::data::{Msg, User, UserField};

/// kvs through its public API.
pub struct KvsSystem {
    kvs: Kvs,
    file: Option<PathBuf>,
}

impl KvsSystem {
    /// Opens `url`.
    pub fn open(url: &str) -> Res<KvsSystem> {
        Ok(KvsSystem {
            kvs: Kvs::open(url)?,
            file: url.strip_prefix("redb:").map(PathBuf::from),
        })
    }
}

impl System for KvsSystem {
    fn bulk_insert(&mut self, users: &[User]) -> Res<()> {
        Ok(self.kvs.transaction(|tx| {
            for u in users {
                tx.put(u)?;
            }
            Ok(())
        })?)
    }

    fn durable_insert(&mut self, users: &[User]) -> Res<()> {
        for u in users {
            self.kvs.put(u)?;
        }
        Ok(())
    }

    fn get(&mut self, ids: &[u64]) -> Res<u64> {
        let mut sum = 0;
        for id in ids {
            if let Some(u) = self.kvs.get::<User>(id)? {
                sum += u.id;
            }
        }
        Ok(sum)
    }

    fn unique_lookup(&mut self, emails: &[String]) -> Res<u64> {
        let mut hits = 0;
        for email in emails {
            let found = self.kvs.index::<User>(UserField::Email, email.as_str())?;
            hits += hits_of(found.iter().map(|u| u.email.as_str()), email)?;
        }
        Ok(hits)
    }

    fn index_lookup(&mut self, cities: &[String]) -> Res<u64> {
        let mut hits = 0;
        for city in cities {
            let found = self.kvs.index::<User>(UserField::City, city.as_str())?;
            hits += hits_of(found.iter().map(|u| u.city.as_str()), city)?;
        }
        Ok(hits)
    }

    fn index_range(&mut self, ranges: &[(u64, u64)]) -> Res<(u64, u64)> {
        let mut total = (0, 0);
        for &(lo, hi) in ranges {
            let found = self.kvs.index_range::<User>(UserField::Score, lo..hi)?;
            let (n, sum) = range_hits(found.iter().map(|u| (u.score, u.id)), lo, hi)?;
            total = (total.0 + n, total.1 + sum);
        }
        Ok(total)
    }

    fn iter_page(&mut self, times: usize, page: usize) -> Res<u64> {
        let mut sum = 0;
        for _ in 0..times {
            // As raw redb and native_db fill theirs: a `collect` into `Result<Vec<_>>` cannot
            // size its vector (the shunt hides the length) and would time its regrowth.
            let mut newest = Vec::with_capacity(page);
            for user in self.kvs.iter::<User>(..)?.rev().take(page) {
                newest.push(user?);
            }
            sum += page_sum(newest.iter().map(|u| u.id), page)?;
        }
        Ok(sum)
    }

    fn scan_all(&mut self) -> Res<(u64, u64)> {
        let mut walk = Walk::ascending();
        for u in self.kvs.iter::<User>(..)? {
            walk.step(0, u?.id)?;
        }
        Ok((walk.n, walk.key_sum))
    }

    fn indexed_update(&mut self, users: &[User]) -> Res<()> {
        self.bulk_insert(users)
    }

    fn delete(&mut self, ids: &[u64]) -> Res<u64> {
        Ok(self.kvs.transaction(|tx| {
            let mut deleted = 0;
            for id in ids {
                deleted += u64::from(tx.delete::<User>(id)?);
            }
            Ok(deleted)
        })?)
    }

    fn count(&mut self, times: usize) -> Res<u64> {
        let mut n = 0;
        for _ in 0..times {
            n = self.kvs.count::<User>()?;
        }
        Ok(n)
    }

    fn seq(&mut self, n: usize) -> Res<u64> {
        Ok(self.kvs.transaction(|tx| {
            let mut v = 0;
            for _ in 0..n {
                v = tx.seq("bench", 1)?;
            }
            Ok(v)
        })?)
    }

    fn seq_durable(&mut self, n: usize) -> Res<u64> {
        let mut v = 0;
        for _ in 0..n {
            v = self.kvs.seq("bench_durable", 1)?;
        }
        Ok(v)
    }

    fn file_size(&self) -> Option<u64> {
        self.file.as_deref().and_then(file_len)
    }

    fn streams(&mut self) -> Option<&mut dyn Streams> {
        Some(self)
    }
}

impl Streams for KvsSystem {
    fn append(&mut self, feed: &str, msgs: &[Msg]) -> Res<()> {
        Ok(self.kvs.transaction(|tx| {
            for m in msgs {
                tx.append(feed, m)?;
            }
            Ok(())
        })?)
    }

    fn take_pages(
        &mut self,
        feed: &str,
        skip: u64,
        page: usize,
        pages: usize,
    ) -> Res<(u64, Duration)> {
        let mut r: Reader<Msg> = self.kvs.reader(feed)?;
        r.dir = Dir::Forward;
        self.kvs.skip(&mut r, usize::try_from(skip)?)?;
        let start = Instant::now();
        let mut sum = 0;
        for _ in 0..pages {
            sum += self
                .kvs
                .take(&mut r, page)?
                .iter()
                .map(|m| m.id)
                .sum::<u64>();
        }
        Ok((sum, start.elapsed()))
    }

    fn remove(&mut self, feed: &str, ids: &[u64]) -> Res<u64> {
        Ok(self.kvs.transaction(|tx| {
            let mut removed = 0;
            for id in ids {
                removed += u64::from(tx.remove::<Msg>(feed, id)?);
            }
            Ok(removed)
        })?)
    }

    fn len(&mut self, feed: &str) -> Res<u64> {
        Ok(self.kvs.writer(feed)?.count)
    }
}
