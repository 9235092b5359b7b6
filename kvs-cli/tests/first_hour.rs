//! The console over what a new user writes in the first hour: tables whose fields serde
//! renames, files left behind by a crashed writer, records the application could not read,
//! and the console's own contracts (usage errors, messages that name the file).

use std::io::Write;
use std::process::{Command, Stdio};

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::{fails, ok, run, Scratch};

/// Every serde attribute that changes stored names or presence, on a table with a unique and
/// a plain index.
#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[allow(clippy::struct_field_names)] // the names an application would give them
#[kvs(name = "people")]
#[serde(rename_all = "camelCase")]
struct Person {
    #[kvs(key)]
    #[serde(rename = "ID")]
    person_id: u64,
    #[kvs(index, unique)]
    #[serde(alias = "mail")]
    email_address: String,
    #[kvs(index)]
    home_city: String,
    #[kvs(index)]
    #[serde(default)]
    nick_name: Option<String>,
    #[serde(default)]
    visits: u32,
    #[serde(skip)]
    cached: u8,
}

fn person(id: u64, city: &str) -> Person {
    Person {
        person_id: id,
        email_address: format!("p{id}@x.io"),
        home_city: city.to_owned(),
        nick_name: id.is_multiple_of(2).then(|| format!("nick{id}")),
        visits: u32::try_from(id).unwrap() * 10,
        cached: 0,
    }
}

/// The typed API's view of `people`: every record found by each index, and unique enforced.
fn audit(url: &str, want: &[Person]) {
    let kvs = Kvs::open(url).unwrap();
    let all: Vec<Person> = kvs.all().unwrap();
    assert_eq!(all, want);
    for p in want {
        assert_eq!(
            kvs.index::<Person>(PersonField::EmailAddress, &p.email_address)
                .unwrap(),
            std::slice::from_ref(p)
        );
        let city = kvs
            .index::<Person>(PersonField::HomeCity, &p.home_city)
            .unwrap();
        assert!(city.contains(p), "{} not found by city", p.person_id);
        if let Some(nick) = &p.nick_name {
            assert_eq!(
                kvs.index::<Person>(PersonField::NickName, nick).unwrap(),
                std::slice::from_ref(p)
            );
        }
    }
    if let Some(first) = want.first() {
        let mut clash = person(999, "Nowhere");
        clash.email_address.clone_from(&first.email_address);
        assert!(matches!(kvs.put(&clash), Err(kvs::Error::Duplicate { .. })));
    }
    let dump = kvs.dump().unwrap();
    for table in ["people#emailAddress", "people#homeCity"] {
        let row = dump.rows.iter().find(|r| r.name == table).unwrap();
        assert_eq!(row.elements, want.len() as u64, "{table}");
    }
}

#[test]
fn serde_renamed_tables_survive_check_repair_delete_export_and_import() {
    let s = Scratch::new();
    let url = s.url("people.redb");
    let mut people: Vec<Person> = (1..=4)
        .map(|id| person(id, ["Oslo", "Rome"][(id % 2) as usize]))
        .collect();
    {
        let kvs = Kvs::open(&url).unwrap();
        for p in &people {
            kvs.put(p).unwrap();
        }
    }
    let dir: Value = serde_json::from_str(&ok(&url, &["--json", "dir"], "")).unwrap();
    let entry = &dir.as_array().unwrap()[0];
    assert_eq!(entry["key_field"], "ID");
    assert_eq!(
        entry["fields"],
        serde_json::json!(["ID", "emailAddress", "homeCity", "nickName", "visits"])
    );

    let check = ok(&url, &["check"], "");
    assert!(!check.contains("without its key"), "{check}");
    ok(&url, &["check", "--repair"], "");
    audit(&url, &people);

    let got: Value =
        serde_json::from_str(&ok(&url, &["--json", "get", "people", "2"], "")).unwrap();
    assert_eq!(got["homeCity"], "Oslo");
    let by_city = ok(&url, &["--json", "index", "people", "homeCity", "Rome"], "");
    assert_eq!(
        serde_json::from_str::<Value>(&by_city)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    ok(&url, &["delete", "people", "3"], "");
    people.retain(|p| p.person_id != 3);
    audit(&url, &people);
    // The deleted record's unique value is free again.
    let kvs = Kvs::open(&url).unwrap();
    let mut reuse = person(30, "Oslo");
    reuse.email_address = "p3@x.io".to_owned();
    kvs.put(&reuse).unwrap();
    kvs.delete::<Person>(&30).unwrap();
    drop(kvs);

    let export = ok(&url, &["export", "people"], "");
    let copy = s.url("copy.redb");
    ok(&copy, &["import", "--create"], &export);
    audit(&copy, &people);
    assert!(ok(&copy, &["check"], "").contains("ok"));
}

#[test]
fn import_refuses_records_the_application_cannot_read() {
    let s = Scratch::new();
    let url = s.url("people.redb");
    drop(Kvs::open(&url).unwrap());
    let good = r#"{"table":"people","record":{"ID":1,"emailAddress":"a@x","homeCity":"Oslo"}}"#;
    ok(&url, &["import"], good);
    for (line, why) in [
        (
            r#"{"table":"people","record":{"ID":2,"emailAddress":"b@x"}}"#,
            "homeCity is missing",
        ),
        (
            r#"{"table":"people","record":{"ID":3,"emailAddress":"c@x","homeCity":7}}"#,
            "homeCity",
        ),
        (
            r#"{"table":"people","record":{"ID":4,"emailAddress":"d@x","homeCity":"Oslo","visits":-1}}"#,
            "visits",
        ),
        (
            r#"{"table":"people","record":{"ID":5,"emailAddress":"e@x","homeCity":"Oslo","home_city":"x"}}"#,
            "home_city is not a field",
        ),
    ] {
        let err = fails(&url, &["import"], line);
        assert!(err.contains(why), "{line}: {err}");
    }
    let kvs = Kvs::open(&url).unwrap();
    let all: Vec<Person> = kvs.all().unwrap();
    assert_eq!(all.iter().map(|p| p.person_id).collect::<Vec<_>>(), [1]);
    assert_eq!(all[0].visits, 0, "serde default");
}

#[test]
fn check_finds_records_the_application_cannot_read() {
    let s = Scratch::new();
    let url = s.url("people.redb");
    let kvs = Kvs::open(&url).unwrap();
    kvs.put(&person(1, "Oslo")).unwrap();
    drop(kvs);
    // A record written behind kvs's back, with a field of the wrong type.
    let bad = rmp_serde::to_vec_named(&serde_json::json!({
        "ID": 2, "emailAddress": "b@x", "homeCity": "Oslo", "visits": "many"
    }))
    .unwrap();
    {
        let db = redb::Database::open(s.0.join("people.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def = kvs::redb::table_definition("people");
            let mut t = txn.open_table(def).unwrap();
            let mut key = Vec::new();
            kvs::Key::encode_key(&2u64, &mut key);
            t.insert(key.as_slice(), bad.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let out = run(&url, &["check"], "");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("visits"), "{text}");
}

const CHILD: &str = "KVS_FIRST_HOUR_CHILD";

/// Run by `a_file_left_by_a_crashed_writer_is_recovered_by_write_commands`: writes, says so,
/// and waits to be killed with the file open.
#[test]
#[ignore = "the crashed writer: run by the recovery test, not on its own"]
fn crashed_writer_child() {
    let Ok(url) = std::env::var(CHILD) else {
        return;
    };
    let kvs = Kvs::open(&url).unwrap();
    for id in 1..=3 {
        kvs.put(&person(id, "Oslo")).unwrap();
    }
    println!("written");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn a_file_left_by_a_crashed_writer_is_recovered_by_write_commands() {
    let s = Scratch::new();
    let url = s.url("crashed.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crashed_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("written") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0);
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let err = fails(&url, &["count", "people"], "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("kvs check --repair"), "{err}");
    let before = std::fs::read(s.0.join("crashed.redb")).unwrap();
    assert_eq!(before, std::fs::read(s.0.join("crashed.redb")).unwrap());
    ok(&url, &["check", "--repair"], "");
    assert_eq!(ok(&url, &["count", "people"], "").trim(), "3");
    audit(
        &url,
        &(1..=3).map(|id| person(id, "Oslo")).collect::<Vec<_>>(),
    );
}

#[test]
fn a_truncated_file_says_so() {
    let s = Scratch::new();
    let url = s.url("cut.redb");
    {
        let kvs = Kvs::open(&url).unwrap();
        for id in 1..=200 {
            kvs.put(&person(id, "Oslo")).unwrap();
        }
    }
    let path = s.0.join("cut.redb");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let app = Kvs::open(&url).unwrap_err().to_string();
    assert!(app.contains("truncated"), "{app}");
    // redb's read-only open cannot tell a truncated file from one that needs recovery: a read
    // command names both and the command that tells them apart.
    let read = fails(&url, &["count", "people"], "");
    assert!(
        read.contains("damaged") && read.contains("kvs check --repair"),
        "{read}"
    );
    let before = std::fs::read(&path).unwrap();
    let repair = fails(&url, &["check", "--repair"], "");
    assert!(repair.contains("truncated"), "{repair}");
    assert_eq!(
        before,
        std::fs::read(&path).unwrap(),
        "a failed repair changed the file"
    );
}

#[test]
fn messages_name_the_file() {
    let s = Scratch::new();
    let missing = s.url("nope.redb");
    let err = fails(&missing, &["dir"], "");
    assert!(
        err.contains("nope.redb") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!s.0.join("nope.redb").exists());
    let err = fails(&missing, &["delete", "people", "1"], "");
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(&s.url("sub/x.redb"), &["import", "--create"], "");
    assert!(err.contains("sub/x.redb"), "{err}");
    let err = fails(&format!("redb:{}", s.0.display()), &["dir"], "");
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn usage_errors_are_one_line_on_stderr() {
    let s = Scratch::new();
    let url = s.url("u.redb");
    drop(Kvs::open(&url).unwrap());
    for args in [&["--json", "get", "people"][..], &["get"], &["nosuch"]] {
        let out = run(&url, args, "");
        assert!(!out.status.success());
        assert!(
            out.stdout.is_empty(),
            "{args:?}: stdout {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // In a piped session too: the bad line is one line on stderr, and the next line runs.
    let out = run(&url, &[], "get\ncount people\n");
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].contains("required arguments"), "{err}");
    assert!(lines[1].contains("1 command failed"), "{err}");
    // `--db` is not shown as required when KVS_URL is set.
    let help = Command::new(env!("CARGO_BIN_EXE_kvs"))
        .args(["get", "--help"])
        .env("KVS_URL", &url)
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(!help.contains("kvs get --db"), "{help}");
    // The stream tables that dir lists can be counted.
    assert_eq!(ok(&url, &["count", "#reader"], "").trim(), "0");
}
