//! docs/SCHEMA.md's console migration, as a user runs it: an indexed field that changed
//! type refuses its table at open, and export, a conversion, and import into a new table
//! move the records over.

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::{fails, ok, Scratch};

/// Release 1 of a table, and release 2 with the indexed field's type changed and the table
/// renamed, as docs/SCHEMA.md migrates it.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "items", schema = "r1")]
struct ItemV1 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    qty: u32,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "items_v2", schema = "r2")]
struct ItemV2 {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    qty: String,
}

/// The same table name with the new type, which open refuses while the old records are there.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "items", schema = "r2-in-place")]
struct ItemInPlace {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    qty: String,
}

#[test]
fn the_schema_guides_console_migration_works() {
    let s = Scratch::new();
    let file = s.url("shop.redb");
    let at = |schema: &str| format!("{file}?schemas={schema}");
    {
        let kvs = Kvs::open(&at("r1")).unwrap();
        for id in 1..=3 {
            kvs.put(&ItemV1 {
                id,
                qty: u32::try_from(id).unwrap() * 5,
            })
            .unwrap();
        }
    }
    // Changing the type in place: that table is refused, with the way out named.
    {
        let kvs = Kvs::open(&at("r2-in-place")).unwrap();
        let err = kvs.count::<ItemInPlace>().unwrap_err().to_string();
        assert!(
            err.contains("field qty changed type") && err.contains("SCHEMA.md"),
            "{err}"
        );
    }
    // docs/SCHEMA.md: export, move the records to the new table with the field converted, let
    // the new program create the table, import.
    let export = ok(&file, &["export", "items"], "");
    let converted: String = export
        .lines()
        .filter_map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if v["table"] != "items" {
                return None;
            }
            v["table"] = "items_v2".into();
            let qty = v["record"]["qty"].as_u64().unwrap();
            v["record"]["qty"] = qty.to_string().into();
            Some(v.to_string() + "\n")
        })
        .collect();
    drop(Kvs::open(&at("r2")).unwrap());
    ok(&file, &["import"], &converted);
    let kvs = Kvs::open(&at("r2")).unwrap();
    assert_eq!(kvs.count::<ItemV2>().unwrap(), 3);
    assert_eq!(
        kvs.index::<ItemV2>(ItemV2Field::Qty, "10").unwrap(),
        [ItemV2 {
            id: 2,
            qty: "10".into()
        }]
    );
    assert!(kvs.refused().is_empty());
    drop(kvs);
    // An unconverted record is refused by import, naming the field.
    let raw = export.lines().find(|l| l.contains("\"record\"")).unwrap();
    let err = fails(
        &file,
        &["import"],
        &raw.replace("\"items\"", "\"items_v2\""),
    );
    assert!(err.contains("items_v2.qty"), "{err}");
}
