//! Criterion micro-benchmarks of kvs's hot paths on the redb backend: key encoding, record
//! encoding and decoding (the `MessagePack` calls kvs makes), and `put`, `get` and `index`
//! on `mem:` (in memory, so that the figures are the layer and redb's B-tree, not the disk).
//!
//! `cargo bench -p kvs-redb`; the side-by-side comparison with other stores is `kvs-bench`.
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kvs_core::{Key, Kvs};
use kvs_derive::Table;
use serde::{Deserialize, Serialize};

// Links the backend, whose `mem:` scheme is registered through `inventory`.
use kvs_redb as _;

#[derive(Table, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kvs(name = "users", crate = "kvs_core")]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index, unique)]
    email: String,
    #[kvs(index)]
    city: String,
    name: String,
}

const N: u64 = 10_000;

fn user(id: u64) -> User {
    User {
        id,
        email: format!("user{id}@example.com"),
        city: format!("city-{:04}", id % (N / 100)),
        name: format!("User Number {id}"),
    }
}

fn loaded() -> Kvs {
    let kvs = Kvs::open("mem:").expect("mem:");
    kvs.transaction(|tx| (1..=N).try_for_each(|id| tx.put(&user(id))))
        .expect("load");
    kvs
}

fn keys(c: &mut Criterion) {
    c.bench_function("key/u64", |b| {
        b.iter(|| black_box(black_box(123_456_789u64).to_key_bytes()));
    });
    let s = "user123@example.com".to_owned();
    c.bench_function("key/string", |b| {
        b.iter(|| black_box(black_box(&s).to_key_bytes()));
    });
    let t = (7u32, -3i64, "tuple".to_owned());
    c.bench_function("key/tuple3", |b| {
        b.iter(|| black_box(black_box(&t).to_key_bytes()));
    });
}

fn records(c: &mut Criterion) {
    let u = user(42);
    let bytes = rmp_serde::to_vec_named(&u).expect("encode");
    c.bench_function("record/encode", |b| {
        b.iter(|| black_box(rmp_serde::to_vec_named(black_box(&u)).expect("encode")));
    });
    c.bench_function("record/decode", |b| {
        b.iter(|| black_box(rmp_serde::from_slice::<User>(black_box(&bytes)).expect("decode")));
    });
}

fn calls(c: &mut Criterion) {
    let kvs = loaded();
    let mut id = 0;
    c.bench_function("get", |b| {
        b.iter(|| {
            id = id % N + 7;
            black_box(kvs.get::<User>(&id).expect("get"))
        });
    });
    c.bench_function("index/unique", |b| {
        b.iter(|| {
            id = id % N + 7;
            black_box(
                kvs.index::<User>(UserField::Email, format!("user{id}@example.com"))
                    .expect("index"),
            )
        });
    });
    c.bench_function("index/100_hits", |b| {
        b.iter(|| {
            id = (id + 7) % (N / 100);
            black_box(
                kvs.index::<User>(UserField::City, format!("city-{id:04}"))
                    .expect("index"),
            )
        });
    });
    c.bench_function("count", |b| {
        b.iter(|| black_box(kvs.count::<User>().expect("count")));
    });
    // A put in a transaction of 100: the commit is amortised, as in a batch.
    c.bench_function("put/replace_city_x100", |b| {
        b.iter_batched(
            || {
                id = id % (N - 100) + 1;
                (id..id + 100)
                    .map(|i| {
                        let mut u = user(i);
                        u.city = format!("moved-{}", i % 7);
                        u
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                kvs.transaction(|tx| batch.iter().try_for_each(|u| tx.put(u)))
                    .expect("put");
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, keys, records, calls);
criterion_main!(benches);
