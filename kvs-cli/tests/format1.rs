//! The console on a database of kvs format 1 (`tests/fixtures/format1/app.redb`, see
//! `tests/format.rs`): read commands read it as it is and change nothing; the first command
//! that writes upgrades it, in one commit, and the records read the same after.

use serde_json::Value;

mod support;
use support::{ok, Scratch};

fn json(url: &str, args: &[&str]) -> Value {
    let mut with_json = vec!["--json"];
    with_json.extend_from_slice(args);
    serde_json::from_str(&ok(url, &with_json, "")).unwrap()
}

#[test]
fn reads_a_format_1_database_as_it_is_and_upgrades_it_on_the_first_write() {
    let s = Scratch::new();
    let path = s.path("app.redb");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/format1/app.redb"
        ),
        &path,
    )
    .unwrap();
    let url = s.url("app.redb");
    let before = std::fs::read(&path).unwrap();
    let person = json(&url, &["get", "people", "7"]);
    assert_eq!(person["email"], "p7@example.com");
    assert_eq!(person["address"]["zip"], 1007);
    let export_before = ok(&url, &["export"], "");
    assert_eq!(
        export_before
            .lines()
            .filter(|l| l.contains("\"record\""))
            .count(),
        35
    );
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a read changed the file"
    );

    // A write: the counter moves on, and the database is format 2 from then on.
    assert_eq!(json(&url, &["seq", "people", "1"]), 31);
    assert_eq!(json(&url, &["ver"])["format"], 2);
    assert_eq!(json(&url, &["get", "people", "7"]), person);
    let note = json(&url, &["get", "notes", "note-1"]);
    assert_eq!(note["mood"], Value::Null, "a note stored without its mood");
    assert_eq!(note["stars"], -1);
    // The export after the upgrade holds the same records, in the same order.
    let records = |export: &str| -> Vec<Value> {
        export
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter_map(|v| v.get("record").cloned())
            .collect()
    };
    let mut upgraded = records(&ok(&url, &["export"], ""));
    let mut original = records(&export_before);
    // Format 1 left `mood` out of the notes that had none; format 2 stores it as null.
    for record in &mut original {
        if record.get("key").is_some() && record.get("mood").is_none() {
            record["mood"] = Value::Null;
        }
    }
    upgraded.sort_by_key(Value::to_string);
    original.sort_by_key(Value::to_string);
    assert_eq!(upgraded, original);
    let check = json(&url, &["check"]);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["tables"].as_array().map(Vec::len), Some(2));
}
