use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct Reading {
    #[kvs(key)]
    at: f32,
    celsius: f64,
}

fn main() {}
