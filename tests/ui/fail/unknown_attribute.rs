use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
#[kvs(name = "users", sorted)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(indexed)]
    email: String,
}

fn main() {}
