//! serde attributes kvs understands, and a KeyEnum index, compile and work.
use kvs::{KeyEnum, Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(KeyEnum, Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Active,
    OnHold,
    #[serde(rename = "gone")]
    Closed,
}

#[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Account {
    #[kvs(key)]
    #[serde(rename = "ID")]
    account_id: String,
    #[kvs(index)]
    account_status: Status,
    #[kvs(index, unique)]
    #[serde(default, alias = "nick")]
    nick_name: Option<String>,
    #[serde(skip)]
    scratch: u32,
    #[serde(default)]
    visits: u64,
}

fn main() -> kvs::Result<()> {
    let kvs = Kvs::open("mem:")?;
    kvs.put(&Account {
        account_id: "a1".into(),
        account_status: Status::OnHold,
        nick_name: None,
        scratch: 0,
        visits: 1,
    })?;
    assert_eq!(kvs.get::<Account>("a1")?.map(|a| a.visits), Some(1));
    assert_eq!(
        kvs.index::<Account>(AccountField::AccountStatus, Status::OnHold)?.len(),
        1
    );
    assert!(kvs.index::<Account>(AccountField::AccountStatus, Status::Closed)?.is_empty());
    let dir = kvs.dir()?;
    assert_eq!(dir[0].fields, ["ID", "accountStatus", "nickName", "visits"]);
    Ok(())
}
