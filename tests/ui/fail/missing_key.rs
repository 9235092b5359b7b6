use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    id: u64,
    #[kvs(index)]
    email: String,
}

fn main() {}
