use kvs::{KeyEnum, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(KeyEnum, Serialize, Deserialize)]
enum Color {
    Red,
}

#[derive(Table, Serialize, Deserialize)]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    city: String,
    #[kvs(index)]
    age: Option<u32>,
    #[kvs(index)]
    place: (String, u8),
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    let _ = kvs.index::<User>(UserField::City, 42)?;
    let _ = kvs.index::<User>(UserField::Place, ("Oslo", "one"))?;
    kvs.transaction(|tx| {
        let _ = tx.index::<User>(UserField::Age, "forty")?;
        let _ = tx.index::<User>(UserField::City, Color::Red)?;
        Ok(())
    })?;
    Ok(())
}
