//! `native_db` 0.8.2 (on its own redb 2), with the same primary and secondary keys, used as
//! its documentation shows: `insert` for new records, `upsert` to replace, `remove` with the
//! record it read.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use native_db::{native_db, Builder, Database, Models, ToKey};
use native_model::{native_model, Model};
use serde::{Deserialize, Serialize};

use super::{file_len, hits as hits_of, page_sum, range_hits, Res, System, Walk};
use crate::data::{Inputs, User};

/// The benchmark's user as a `native_db` model.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[native_model(id = 1, version = 1)]
#[native_db]
pub struct NUser {
    #[primary_key]
    id: u64,
    #[secondary_key(unique)]
    email: String,
    #[secondary_key]
    city: String,
    #[secondary_key]
    score: u64,
    name: String,
}

/// A named counter: `native_db` has no counters, so `seq` reads and upserts one.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[native_model(id = 2, version = 1)]
#[native_db]
pub struct Counter {
    #[primary_key]
    name: String,
    value: u64,
}

impl From<&User> for NUser {
    fn from(u: &User) -> NUser {
        NUser {
            id: u.id,
            email: u.email.clone(),
            city: u.city.clone(),
            score: u.score,
            name: u.name.clone(),
        }
    }
}

static MODELS: LazyLock<Models> = LazyLock::new(|| {
    let mut models = Models::new();
    models.define::<NUser>().expect("the user model");
    models.define::<Counter>().expect("the counter model");
    models
});

/// `native_db`.
pub struct Native {
    db: Database<'static>,
    path: PathBuf,
    /// The inputs of the writing workloads, converted before the clock starts.
    prepared: Vec<(usize, Vec<NUser>)>,
}

impl Native {
    /// Creates the database at `path`.
    pub fn open(path: &Path) -> Res<Native> {
        Ok(Native {
            db: Builder::new().create(&MODELS, path)?,
            path: path.to_owned(),
            prepared: Vec::new(),
        })
    }

    /// A counter increment, then a durable upsert of the user with that id, each in a write
    /// transaction of its own: what each of many threads of a `native_db` user writes.
    /// Returns the id.
    pub fn seq_then_put(&self, records: u64) -> Res<u64> {
        let id = self.seq_in("users", 1)?;
        let rw = self.db.rw_transaction()?;
        rw.upsert(NUser::from(&crate::data::user(id, records)))?;
        rw.commit()?;
        Ok(id)
    }

    fn seq_in(&self, name: &str, n: usize) -> Res<u64> {
        let rw = self.db.rw_transaction()?;
        let mut value = 0;
        for _ in 0..n {
            value = rw.get().primary::<Counter>(name)?.map_or(0, |c| c.value) + 1;
            rw.upsert(Counter {
                name: name.to_owned(),
                value,
            })?;
        }
        rw.commit()?;
        Ok(value)
    }
}

impl Native {
    /// The prepared copy of `users` (matched by address and length), or a fresh conversion.
    fn take(&mut self, users: &[User]) -> Vec<NUser> {
        match self
            .prepared
            .iter()
            .position(|(at, v)| *at == users.as_ptr() as usize && v.len() == users.len())
        {
            Some(i) => self.prepared.swap_remove(i).1,
            None => users.iter().map(NUser::from).collect(),
        }
    }
}

impl System for Native {
    fn prepare(&mut self, inputs: &Inputs) {
        for users in [&inputs.bulk, &inputs.durable, &inputs.updates] {
            let converted = users.iter().map(NUser::from).collect();
            self.prepared.push((users.as_ptr() as usize, converted));
        }
    }

    fn bulk_insert(&mut self, users: &[User]) -> Res<()> {
        let users = self.take(users);
        let rw = self.db.rw_transaction()?;
        for u in users {
            rw.insert(u)?;
        }
        rw.commit()?;
        Ok(())
    }

    fn durable_insert(&mut self, users: &[User]) -> Res<()> {
        let users = self.take(users);
        for u in users {
            let rw = self.db.rw_transaction()?;
            rw.insert(u)?;
            rw.commit()?;
        }
        Ok(())
    }

    fn get(&mut self, ids: &[u64]) -> Res<u64> {
        let mut sum = 0;
        for &id in ids {
            let r = self.db.r_transaction()?;
            if let Some(u) = r.get().primary::<NUser>(id)? {
                sum += u.id;
            }
        }
        Ok(sum)
    }

    fn unique_lookup(&mut self, emails: &[String]) -> Res<u64> {
        let mut hits = 0;
        for email in emails {
            let r = self.db.r_transaction()?;
            if let Some(u) = r
                .get()
                .secondary::<NUser>(NUserKey::email, email.as_str())?
            {
                hits += hits_of([u.email.as_str()], email)?;
            }
        }
        Ok(hits)
    }

    fn index_lookup(&mut self, cities: &[String]) -> Res<u64> {
        let mut hits = 0;
        for city in cities {
            let r = self.db.r_transaction()?;
            let found = r
                .scan()
                .secondary::<NUser>(NUserKey::city)?
                .range(city.as_str()..=city.as_str())?
                .collect::<Result<Vec<NUser>, _>>()?;
            hits += hits_of(found.iter().map(|u| u.city.as_str()), city)?;
        }
        Ok(hits)
    }

    fn index_range(&mut self, ranges: &[(u64, u64)]) -> Res<(u64, u64)> {
        let mut total = (0, 0);
        for &(lo, hi) in ranges {
            let r = self.db.r_transaction()?;
            let found = r
                .scan()
                .secondary::<NUser>(NUserKey::score)?
                .range(lo..hi)?
                .collect::<Result<Vec<NUser>, _>>()?;
            let (n, sum) = range_hits(found.iter().map(|u| (u.score, u.id)), lo, hi)?;
            total = (total.0 + n, total.1 + sum);
        }
        Ok(total)
    }

    fn iter_page(&mut self, times: usize, page: usize) -> Res<u64> {
        let mut sum = 0;
        for _ in 0..times {
            let r = self.db.r_transaction()?;
            let mut newest = Vec::with_capacity(page);
            for user in r.scan().primary::<NUser>()?.all()?.rev().take(page) {
                newest.push(user?);
            }
            sum += page_sum(newest.iter().map(|u| u.id), page)?;
        }
        Ok(sum)
    }

    fn scan_all(&mut self) -> Res<(u64, u64)> {
        let r = self.db.r_transaction()?;
        let mut walk = Walk::ascending();
        for u in r.scan().primary::<NUser>()?.all()? {
            walk.step(0, u?.id)?;
        }
        Ok((walk.n, walk.key_sum))
    }

    fn indexed_update(&mut self, users: &[User]) -> Res<()> {
        let users = self.take(users);
        let rw = self.db.rw_transaction()?;
        for u in users {
            rw.upsert(u)?;
        }
        rw.commit()?;
        Ok(())
    }

    fn delete(&mut self, ids: &[u64]) -> Res<u64> {
        let rw = self.db.rw_transaction()?;
        let mut deleted = 0;
        for &id in ids {
            if let Some(u) = rw.get().primary::<NUser>(id)? {
                rw.remove(u)?;
                deleted += 1;
            }
        }
        rw.commit()?;
        Ok(deleted)
    }

    fn count(&mut self, times: usize) -> Res<u64> {
        let mut n = 0;
        for _ in 0..times {
            let r = self.db.r_transaction()?;
            n = r.len().primary::<NUser>()?;
        }
        Ok(n)
    }

    fn seq(&mut self, n: usize) -> Res<u64> {
        self.seq_in("bench", n)
    }

    fn seq_durable(&mut self, n: usize) -> Res<u64> {
        let mut v = 0;
        for _ in 0..n {
            v = self.seq_in("bench_durable", 1)?;
        }
        Ok(v)
    }

    fn file_size(&self) -> Option<u64> {
        file_len(&self.path)
    }
}
