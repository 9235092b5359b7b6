use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    name: String,
}

#[derive(Table, Serialize, Deserialize)]
struct Order {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    user: u64,
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    // A field of another table.
    let _ = kvs.index::<User>(OrderField::User, 1)?;
    // A field that is not indexed.
    let _ = kvs.index::<User>(UserField::Name, "Ann")?;
    Ok(())
}
