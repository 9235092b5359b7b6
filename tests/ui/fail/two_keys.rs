use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(key)]
    email: String,
}

fn main() {}
