//! The console's queries beyond exact match: index ranges, counts of a value, listings from
//! the newest end, and listings that stream.

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::{fails, ok, Scratch};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "people")]
struct Person {
    #[kvs(key)]
    id: u32,
    #[kvs(index)]
    age: i32,
    #[kvs(index)]
    city: String,
}

fn ids(json: &str) -> Vec<u64> {
    let v: Value = serde_json::from_str(json).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

#[test]
fn ranges_counts_and_listings_from_either_end() {
    let s = Scratch::new();
    let url = s.url("q.redb");
    {
        let kvs = Kvs::open(&url).unwrap();
        for id in 1..=1200u32 {
            let age = i32::try_from(id % 60).unwrap() - 10;
            let city = ["Oslo", "Rome", "Lima"][(id % 3) as usize].to_owned();
            kvs.put(&Person { id, age, city }).unwrap();
        }
    }
    // --from inclusive, --to exclusive, ordered by (value, key); negatives first.
    let got = ids(&ok(
        &url,
        &[
            "--json", "index", "people", "age", "--from", "-2", "--to", "0",
        ],
        "",
    ));
    let mut want: Vec<(i32, u64)> = (1..=1200u64)
        .map(|id| (i32::try_from(id % 60).unwrap() - 10, id))
        .filter(|(age, _)| (-2..0).contains(age))
        .collect();
    want.sort_unstable();
    assert_eq!(got, want.iter().map(|(_, id)| *id).collect::<Vec<_>>());
    let back = ids(&ok(
        &url,
        &[
            "--json", "index", "people", "age", "--from", "48", "--back", "--limit", "3",
        ],
        "",
    ));
    assert_eq!(back, [1199, 1139, 1079]);
    let only_to = ids(&ok(
        &url,
        &["--json", "index", "people", "age", "--to", "-9"],
        "",
    ));
    assert_eq!(only_to.len(), 20);
    // Counts of a value, and of the table.
    assert_eq!(
        ok(&url, &["count", "people", "city", "Oslo"], "").trim(),
        "400"
    );
    assert_eq!(
        ok(&url, &["count", "people", "age", "-10"], "").trim(),
        "20"
    );
    assert_eq!(ok(&url, &["count", "people"], "").trim(), "1200");
    // Newest first, from a key down.
    assert_eq!(
        ids(&ok(
            &url,
            &["--json", "all", "people", "--back", "--limit", "2"],
            ""
        )),
        [1200, 1199]
    );
    assert_eq!(
        ids(&ok(
            &url,
            &["--json", "all", "people", "--back", "--from", "10", "--limit", "2"],
            ""
        )),
        [10, 9]
    );
    // A long listing streams: valid JSON, every record, and the human form counts them.
    assert_eq!(ids(&ok(&url, &["--json", "all", "people"], "")).len(), 1200);
    let human = ok(&url, &["all", "people"], "");
    assert!(
        human.trim_end().ends_with("(1200 records)"),
        "{}",
        &human[human.len() - 40..]
    );
    // A value and a range together is a usage error.
    let err = fails(&url, &["index", "people", "age", "3", "--from", "1"], "");
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(&url, &["count", "people", "city", "Nowhere", "extra"], "");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
