use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    let _ = kvs.index::<User>(UserField::City, 42)?;
    Ok(())
}
