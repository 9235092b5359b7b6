//! Every supported key and index type compiles, and an index takes the forms of value the
//! docs promise.
use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, PartialEq)]
#[kvs(name = "everything", schema = "ui")]
pub struct Everything {
    #[kvs(key)]
    id: (u8, i128, String),
    #[kvs(index)]
    a: u16,
    #[kvs(index)]
    b: i64,
    #[kvs(index, unique)]
    c: Option<String>,
    #[kvs(index)]
    d: Vec<u8>,
    #[kvs(index)]
    e: bool,
    #[kvs(index)]
    f: char,
    #[kvs(index)]
    g: (u32, String, bool, char),
    #[kvs(index)]
    h: Option<(i8, Vec<u8>)>,
    #[kvs(index)]
    r#type: usize,
    not_indexed: f64,
}

/// A renamed facade crate.
mod renamed {
    pub use kvs as store;
}

#[derive(renamed::store::Table, Serialize, Deserialize)]
#[kvs(crate = "renamed::store")]
struct Renamed {
    #[kvs(key)]
    id: u32,
}

fn main() -> Result<(), kvs::Error> {
    let kvs = Kvs::open("mem:")?;
    let value = Everything {
        id: (1, -1, "x".into()),
        a: 1,
        b: -2,
        c: Some("c".into()),
        d: vec![0, 1],
        e: true,
        f: 'z',
        g: (7, "g".into(), false, 'q'),
        h: None,
        r#type: 3,
        not_indexed: 0.5,
    };
    kvs.put(&value)?;
    assert_eq!(kvs.index::<Everything>(EverythingField::A, 1)?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::B, -2i64)?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::C, "c")?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::D, &[0u8, 1][..])?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::D, vec![0u8, 1])?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::D, b"\0\x01")?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::C, Some("c".to_string()))?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::C, None::<&str>)?.len(), 0);
    assert_eq!(kvs.index::<Everything>(EverythingField::E, true)?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::F, 'z')?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::G, (7, "g", false, 'q'))?.len(), 1);
    assert_eq!(kvs.index::<Everything>(EverythingField::H, (1, vec![]))?.len(), 0);
    assert_eq!(kvs.index::<Everything>(EverythingField::Type, 3)?.len(), 1);
    assert_eq!(kvs.get::<Everything>(&(1, -1, "x".into()))?, Some(value));
    kvs.put(&Renamed { id: 1 })?;
    assert_eq!(kvs.count::<Renamed>()?, 1);
    Ok(())
}
