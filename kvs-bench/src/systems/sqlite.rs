//! `SQLite` through rusqlite (bundled): WAL mode, `synchronous=FULL` (every commit is
//! durable), a unique index on email and indexes on city and score, cached prepared
//! statements.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use super::{file_len, hits as hits_of, page_sum, range_hits, Res, System, Walk};
use crate::data::User;

/// `SQLite`.
pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
}

const UPSERT: &str = "INSERT INTO users (id, email, city, score, name) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (id) DO UPDATE SET email = excluded.email, city = excluded.city,
     score = excluded.score, name = excluded.name";

const SEQ: &str = "INSERT INTO seq (name, value) VALUES (?1, 1)
     ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value";

impl Sqlite {
    /// Creates the database at `path`.
    pub fn open(path: &Path) -> Res<Sqlite> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, city TEXT NOT NULL,
                 score INTEGER NOT NULL, name TEXT NOT NULL);
             CREATE UNIQUE INDEX users_email ON users (email);
             CREATE INDEX users_city ON users (city);
             CREATE INDEX users_score ON users (score);
             CREATE TABLE seq (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(Sqlite {
            conn,
            path: path.to_owned(),
        })
    }

    /// Another connection to the database at `path`, made by [`Sqlite::open`]: one per
    /// thread, as `SQLite` users write from many threads, waiting up to 60 s for the lock.
    pub fn connect(path: &Path) -> Res<Sqlite> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(60))?;
        Ok(Sqlite {
            conn,
            path: path.to_owned(),
        })
    }

    /// A counter increment, then a durable put of the user with that id, each a transaction
    /// of its own (autocommit). Returns the id.
    pub fn seq_then_put(&mut self, records: u64) -> Res<u64> {
        let id: u64 = self
            .conn
            .prepare_cached(SEQ)?
            .query_row(["users"], |row| row.get(0))?;
        let u = crate::data::user(id, records);
        self.conn
            .prepare_cached(UPSERT)?
            .execute(params![u.id, u.email, u.city, u.score, u.name])?;
        Ok(id)
    }

    fn upsert_all(&mut self, users: &[User]) -> Res<()> {
        let tx = self.conn.transaction()?;
        {
            let mut put = tx.prepare_cached(UPSERT)?;
            for u in users {
                put.execute(params![u.id, u.email, u.city, u.score, u.name])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

fn user(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        city: row.get(2)?,
        score: row.get(3)?,
        name: row.get(4)?,
    })
}

impl System for Sqlite {
    fn bulk_insert(&mut self, users: &[User]) -> Res<()> {
        self.upsert_all(users)
    }

    fn durable_insert(&mut self, users: &[User]) -> Res<()> {
        let mut put = self.conn.prepare_cached(UPSERT)?;
        for u in users {
            put.execute(params![u.id, u.email, u.city, u.score, u.name])?;
        }
        Ok(())
    }

    fn get(&mut self, ids: &[u64]) -> Res<u64> {
        let mut get = self
            .conn
            .prepare_cached("SELECT id, email, city, score, name FROM users WHERE id = ?1")?;
        let mut sum = 0;
        for id in ids {
            if let Some(u) = get.query_row([id], user).optional()? {
                sum += u.id;
            }
        }
        Ok(sum)
    }

    fn unique_lookup(&mut self, emails: &[String]) -> Res<u64> {
        let mut get = self
            .conn
            .prepare_cached("SELECT id, email, city, score, name FROM users WHERE email = ?1")?;
        let mut hits = 0;
        for email in emails {
            if let Some(u) = get.query_row([email], user).optional()? {
                hits += hits_of([u.email.as_str()], email)?;
            }
        }
        Ok(hits)
    }

    fn index_lookup(&mut self, cities: &[String]) -> Res<u64> {
        let mut get = self.conn.prepare_cached(
            "SELECT id, email, city, score, name FROM users WHERE city = ?1 ORDER BY id",
        )?;
        let mut hits = 0;
        for city in cities {
            let found = get
                .query_map([city], user)?
                .collect::<rusqlite::Result<Vec<User>>>()?;
            hits += hits_of(found.iter().map(|u| u.city.as_str()), city)?;
        }
        Ok(hits)
    }

    fn index_range(&mut self, ranges: &[(u64, u64)]) -> Res<(u64, u64)> {
        let mut get = self.conn.prepare_cached("SELECT id, email, city, score, name FROM users WHERE score BETWEEN ?1 AND ?2 ORDER BY score, id")?;
        let mut total = (0, 0);
        for &(lo, hi) in ranges {
            // BETWEEN includes both ends; the ranges are half-open.
            let found = get
                .query_map([lo, hi - 1], user)?
                .collect::<rusqlite::Result<Vec<User>>>()?;
            let (n, sum) = range_hits(found.iter().map(|u| (u.score, u.id)), lo, hi)?;
            total = (total.0 + n, total.1 + sum);
        }
        Ok(total)
    }

    fn iter_page(&mut self, times: usize, page: usize) -> Res<u64> {
        let mut get = self.conn.prepare_cached(
            "SELECT id, email, city, score, name FROM users ORDER BY id DESC LIMIT ?1",
        )?;
        let mut sum = 0;
        for _ in 0..times {
            let mut newest = Vec::with_capacity(page);
            for row in get.query_map([page], user)? {
                newest.push(row?);
            }
            sum += page_sum(newest.iter().map(|u| u.id), page)?;
        }
        Ok(sum)
    }

    fn scan_all(&mut self) -> Res<(u64, u64)> {
        let mut all = self
            .conn
            .prepare_cached("SELECT id, email, city, score, name FROM users ORDER BY id")?;
        let mut walk = Walk::ascending();
        for u in all.query_map([], user)? {
            walk.step(0, u?.id)?;
        }
        Ok((walk.n, walk.key_sum))
    }

    fn indexed_update(&mut self, users: &[User]) -> Res<()> {
        self.upsert_all(users)
    }

    fn delete(&mut self, ids: &[u64]) -> Res<u64> {
        let tx = self.conn.transaction()?;
        let mut deleted = 0;
        {
            let mut delete = tx.prepare_cached("DELETE FROM users WHERE id = ?1")?;
            for id in ids {
                deleted += delete.execute([id])? as u64;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    fn count(&mut self, times: usize) -> Res<u64> {
        let mut count = self.conn.prepare_cached("SELECT COUNT(*) FROM users")?;
        let mut n = 0;
        for _ in 0..times {
            n = count.query_row([], |row| row.get(0))?;
        }
        Ok(n)
    }

    fn seq(&mut self, n: usize) -> Res<u64> {
        let tx = self.conn.transaction()?;
        let mut v = 0;
        {
            let mut seq = tx.prepare_cached(SEQ)?;
            for _ in 0..n {
                v = seq.query_row(["bench"], |row| row.get(0))?;
            }
        }
        tx.commit()?;
        Ok(v)
    }

    fn seq_durable(&mut self, n: usize) -> Res<u64> {
        let mut seq = self.conn.prepare_cached(SEQ)?;
        let mut v = 0;
        for _ in 0..n {
            v = seq.query_row(["bench_durable"], |row| row.get(0))?;
        }
        Ok(v)
    }

    /// The main file plus the write-ahead log (not checkpointed yet).
    fn file_size(&self) -> Option<u64> {
        let wal = self.path.with_extension("sqlite-wal");
        Some(file_len(&self.path)? + file_len(&wal).unwrap_or(0))
    }
}
