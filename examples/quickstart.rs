//! The kvs quickstart: a table with a unique and a plain index, on the embedded default
//! (a redb file), or on whatever `KVS_URL` names.
//!
//! `cargo run --example quickstart` (writes `quickstart.redb` in the current directory;
//! `KVS_URL=mem: cargo run --example quickstart` keeps it in memory).

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "users")]
struct User {
    #[kvs(key)]
    id: u64,
    #[kvs(index, unique)]
    email: String,
    #[kvs(index)]
    city: String,
    name: String,
}

fn main() -> Result<(), kvs::Error> {
    let url = std::env::var(kvs::KVS_URL).unwrap_or_else(|_| "redb:quickstart.redb".to_owned());
    let kvs = Kvs::open(&url)?;
    println!("opened {url}: {}", kvs.ver());

    for (name, email, city) in [
        ("Ann", "ann@x.io", "Oslo"),
        ("Bob", "bob@x.io", "Bergen"),
        ("Cid", "cid@x.io", "Oslo"),
    ] {
        // A fresh run finds the address taken by the run before: a unique index at work.
        let id: u64 = kvs.seq("users", 1)?;
        let user = User {
            id,
            email: email.into(),
            city: city.into(),
            name: name.into(),
        };
        match kvs.put(&user) {
            Ok(()) => println!("put     {user:?}"),
            Err(e @ kvs::Error::Duplicate { .. }) => {
                println!("skipped {name}: {e}");
                kvs.transaction(|tx| {
                    // Move the existing record to the new id, in one commit.
                    let old = tx.index::<User>(UserField::Email, email)?;
                    for old in old {
                        tx.delete::<User>(&old.id)?;
                    }
                    tx.put(&user)
                })?;
                println!("moved   {name} to id {id}");
            }
            Err(e) => return Err(e),
        }
    }

    let first = kvs.all::<User>()?[0].id;
    let ann: Option<User> = kvs.get::<User>(&first)?;
    println!("get {first}    -> {ann:?}");
    let oslo: Vec<User> = kvs.index::<User>(UserField::City, "Oslo")?;
    println!(
        "city Oslo -> {:?}",
        oslo.iter().map(|u| &u.name).collect::<Vec<_>>()
    );
    let by_mail = kvs.index::<User>(UserField::Email, "bob@x.io")?;
    println!(
        "email bob -> {:?}",
        by_mail.iter().map(|u| u.id).collect::<Vec<_>>()
    );
    println!("count     -> {}", kvs.count::<User>()?);
    let all: Vec<User> = kvs.all::<User>()?;
    println!(
        "all ids   -> {:?}",
        all.iter().map(|u| u.id).collect::<Vec<_>>()
    );
    println!("deleted {first}: {}", kvs.delete::<User>(&first)?);
    println!("count     -> {}", kvs.count::<User>()?);
    for t in kvs.dir()? {
        println!("table {t}");
    }
    println!("{}", kvs.ver());
    println!("{}", kvs.dump()?);
    Ok(())
}
