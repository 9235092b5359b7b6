use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    #[kvs(index)]
    age: u32,
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    let _ = kvs.index_range::<User>(UserField::City, 1..5)?;
    let _ = kvs.index_iter::<User>(UserField::Age, "a".."b")?;
    let snap = kvs.snapshot()?;
    let _ = snap.index_count::<User>(UserField::City, 3)?;
    let _ = snap.index::<User>(UserField::Age, "forty")?;
    // `..` takes every field.
    let _ = snap.index_range::<User>(UserField::City, ..)?;
    kvs.transaction(|tx| {
        let _ = tx.index_range::<User>(UserField::Age, "a"..)?;
        let _ = tx.index_count::<User>(UserField::City, 'x')?;
        Ok(())
    })?;
    Ok(())
}
