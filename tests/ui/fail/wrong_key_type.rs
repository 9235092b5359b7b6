use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    let _ = kvs.get::<User>(&"one")?;
    let _ = kvs.range::<User>("a".."b")?;
    let _ = kvs.iter::<User>("a"..)?;
    Ok(())
}
