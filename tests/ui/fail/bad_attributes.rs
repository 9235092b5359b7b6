use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
#[kvs(name = "users#all", name = "again")]
struct User {
    #[kvs(key, index)]
    id: u64,
    #[kvs(unique)]
    email: String,
    #[kvs(index, index)]
    city: String,
}

#[derive(Table, Serialize, Deserialize)]
#[kvs(key, crate = "not a path")]
struct Misplaced {
    #[kvs(key, name = "x")]
    id: u64,
    #[kvs(index = "yes")]
    other: u64,
}

#[derive(Table, Serialize, Deserialize)]
enum Shape {
    Round,
}

#[derive(Table, Serialize, Deserialize)]
struct Wrapper<T> {
    #[kvs(key)]
    id: u64,
    inner: T,
}

fn main() {}
