use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct Reading {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    celsius: f64,
}

fn main() {}
