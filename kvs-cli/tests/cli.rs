//! The `kvs` binary, driven as a user drives it, against databases written by a program that
//! uses the derive.

use std::io::Write;

use redb::ReadableTable;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use kvs::{Kvs, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod support;
use support::Scratch;

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

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "temps")]
struct Temp {
    #[kvs(key)]
    at: i64,
    #[kvs(index)]
    place: (String, u8),
    celsius: i16,
}

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "msgs")]
struct Msg {
    #[kvs(key)]
    id: u64,
    text: String,
}

fn user(id: u64, city: &str) -> User {
    User {
        id,
        email: format!("u{id}@x.io"),
        city: city.to_owned(),
        name: format!("User {id}"),
    }
}

/// A database the way an application leaves it: users in three cities, temperatures with
/// negative keys, a feed, a counter.
fn app_db(s: &Scratch) -> String {
    let url = s.url("app.redb");
    fill(&url);
    url
}

/// Writes the application's data at `url`.
fn fill(url: &str) {
    let kvs = Kvs::open(url).unwrap();
    for id in 1..=6 {
        kvs.put(&user(id, ["Oslo", "Bergen", "Tromsø"][(id % 3) as usize]))
            .unwrap();
    }
    for at in [-10i64, -5, 0, 7] {
        kvs.put(&Temp {
            at,
            place: ("Oslo".to_owned(), 1),
            celsius: i16::try_from(at).unwrap() * 2,
        })
        .unwrap();
    }
    for id in 1..=4 {
        kvs.append(
            "room",
            &Msg {
                id,
                text: format!("hello {id}"),
            },
        )
        .unwrap();
    }
    kvs.seq("users", 6).unwrap();
}

fn kvs_cmd(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvs"));
    cmd.env_remove("KVS_URL").arg("--db").arg(url).args(args);
    cmd
}

fn run(url: &str, args: &[&str]) -> Output {
    kvs_cmd(url, args).stdin(Stdio::null()).output().unwrap()
}

fn ok(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(
        out.status.success(),
        "kvs {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its one-line error.
fn fails(url: &str, args: &[&str]) -> String {
    let out = run(url, args);
    assert!(!out.status.success(), "kvs {args:?} succeeded");
    assert!(
        out.stdout.is_empty(),
        "kvs {args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn json(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ok(url, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON document ({e}): {text}"))
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn read_commands_show_the_database_and_change_nothing() {
    let s = Scratch::new();
    let url = app_db(&s);
    let before = file_bytes(&s.path("app.redb"));

    let dir = ok(&url, &["dir"]);
    assert!(
        dir.contains("users") && dir.contains("unique email: String"),
        "{dir}"
    );
    assert!(dir.contains("#writer"), "{dir}");
    let dir = json(&url, &["dir"]);
    let users = dir
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "users")
        .unwrap();
    // The catalog entry as stored, the same form export writes.
    assert_eq!(users["key_type"], "U64");
    let export = ok(&url, &["export", "users"]);
    let first: Value = serde_json::from_str(export.lines().next().unwrap()).unwrap();
    assert_eq!(first["catalog"], *users);
    assert_eq!(
        users["fields"],
        serde_json::json!(["id", "email", "city", "name"])
    );

    assert!(ok(&url, &["ver"]).contains("redb 4.6.0"));
    assert_eq!(json(&url, &["ver"])["format"], 2);
    let dump = ok(&url, &["dump"]);
    assert!(
        dump.contains("users#city") && dump.contains("bag"),
        "{dump}"
    );
    let rows = json(&url, &["dump"])["rows"].clone();
    let users_row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "users")
        .unwrap();
    assert_eq!(users_row["elements"], 6);

    assert_eq!(ok(&url, &["count", "users"]).trim(), "6");
    assert_eq!(json(&url, &["count", "temps"]), 4);

    let got = json(&url, &["get", "users", "3"]);
    assert_eq!(got["email"], "u3@x.io");
    assert!(
        ok(&url, &["get", "users", "3"]).contains("\"email\": \"u3@x.io\""),
        "pretty JSON"
    );
    // Negative keys, and global flags after the command.
    let t = json(&url, &["get", "temps", "-5"]);
    assert_eq!(t["celsius"], -10);
    let after: Value = serde_json::from_str(&ok(
        "redb:elsewhere",
        &["get", "temps", "-10", "--json", "--db", &url],
    ))
    .unwrap();
    assert_eq!(after["at"], -10);

    let oslo = json(&url, &["index", "users", "city", "Oslo"]);
    assert_eq!(oslo.as_array().unwrap().len(), 2);
    assert_eq!(
        json(&url, &["index", "users", "email", "u4@x.io"])[0]["id"],
        4
    );
    assert_eq!(
        json(&url, &["index", "users", "email", "nobody"]),
        serde_json::json!([])
    );
    let places = json(&url, &["index", "temps", "place", r#"["Oslo", 1]"#]);
    assert_eq!(places.as_array().unwrap().len(), 4);
    assert!(ok(&url, &["index", "users", "city", "Oslo"]).contains("(2 records)"));

    let page = json(&url, &["all", "users", "--limit", "2", "--from", "3"]);
    let ids: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [3, 4]);
    let temps = json(&url, &["all", "temps", "--from", "-5"]);
    assert_eq!(
        temps.as_array().unwrap().len(),
        3,
        "from -5 on, in key order"
    );

    assert_eq!(json(&url, &["seq", "users"]), 6);
    let feed = json(&url, &["feed", "room", "--back", "--limit", "2"]);
    assert_eq!(feed[0]["id"], 4);
    assert_eq!(feed[1]["id"], 3);
    let writers = json(&url, &["writers"]);
    assert_eq!(writers[0]["feed"], "room");
    assert_eq!(writers[0]["count"], 4);
    assert!(ok(&url, &["writers"]).contains("room"));
    assert!(ok(&url, &["check"]).contains("ok"));
    assert!(!ok(&url, &["export"]).is_empty());

    assert_eq!(
        file_bytes(&s.path("app.redb")),
        before,
        "read commands wrote to the file"
    );
}

#[test]
fn bad_input_is_one_clear_line() {
    let s = Scratch::new();
    let url = app_db(&s);
    assert!(fails(&url, &["get", "users", "99"]).contains("not found in users: 99"));
    let e = fails(&url, &["get", "users", "abc"]);
    assert!(e.contains("expected u64") && e.contains("abc"), "{e}");
    assert!(fails(&url, &["get", "users", "-1"]).contains("expected u64"));
    assert!(fails(&url, &["get", "temps", "x"]).contains("expected i64"));
    let e = fails(&url, &["count", "nope"]);
    assert!(
        e.contains("nope") && e.contains("no such table") && e.contains("users"),
        "{e}"
    );
    let e = fails(&url, &["index", "users", "name", "x"]);
    assert!(
        e.contains("name is not indexed") && e.contains("email, city"),
        "{e}"
    );
    assert!(fails(&url, &["index", "users", "zip", "x"]).contains("zip is not a field"));
    assert!(fails(&url, &["index", "temps", "place", "Oslo"]).contains("JSON array"));

    // Missing file: an error, and no file created.
    let missing = s.url("missing.redb");
    assert!(fails(&missing, &["dir"]).contains("does not exist"));
    assert!(fails(&missing, &["seq", "x", "1"]).contains("does not exist"));
    assert!(!s.path("missing.redb").exists());

    // Not a kvs database: garbage, and another program's redb file; neither is modified.
    std::fs::write(s.path("garbage.redb"), b"this is not a database at all").unwrap();
    let foreign = s.path("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("theirs");
            txn.open_table(def).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let foreign_before = file_bytes(&foreign);
    for (file, args) in [
        ("garbage.redb", &["dir"][..]),
        ("foreign.redb", &["dir"][..]),
        ("foreign.redb", &["delete", "theirs", "1"][..]),
        ("foreign.redb", &["check", "--repair"][..]),
    ] {
        let e = fails(&s.url(file), args);
        assert!(e.contains("not a kvs database"), "{file} {args:?}: {e}");
    }
    assert_eq!(file_bytes(&foreign), foreign_before);
    assert_eq!(
        file_bytes(&s.path("garbage.redb")),
        b"this is not a database at all"
    );

    assert!(fails("nourl", &["dir"]).contains("bad kvs URL"));
    assert!(fails("redb:x.redb?share=sometimes", &["dir"]).contains("share"));
}

#[test]
fn a_database_held_by_an_application() {
    let s = Scratch::new();
    let url = app_db(&s);
    {
        // The default: the application locks the file; the console says so.
        let _app = Kvs::open(&url).unwrap();
        let e = fails(&url, &["count", "users"]);
        assert!(e.contains("in use by another process"), "{e}");
        assert!(fails(&url, &["delete", "users", "1"]).contains("in use"));
    }
    {
        // Opened with share=single, the application lets the console read alongside, and the
        // console sees each of its commits.
        let app = Kvs::open(&format!("{url}?share=single")).unwrap();
        assert_eq!(ok(&url, &["count", "users"]).trim(), "6");
        app.put(&user(7, "Oslo")).unwrap();
        assert_eq!(ok(&url, &["count", "users"]).trim(), "7");
        assert_eq!(json(&url, &["get", "users", "7"])["city"], "Oslo");
        assert!(
            fails(&url, &["delete", "users", "7"]).contains("in use"),
            "writes wait for the app"
        );
    }
}

#[test]
fn writes_keep_indexes_and_feeds_exact() {
    let s = Scratch::new();
    let url = app_db(&s);
    assert_eq!(json(&url, &["seq", "users", "5"]), 11);
    assert_eq!(
        json(&url, &["delete", "users", "3"]),
        serde_json::json!({"deleted": true})
    );
    assert!(ok(&url, &["delete", "users", "3"]).contains("nothing deleted"));
    assert_eq!(json(&url, &["delete", "msgs", "2"])["deleted"], true);
    let kvs = Kvs::open(&url).unwrap();
    assert_eq!(kvs.seq("users", 0).unwrap(), 11);
    assert!(kvs.get::<User>(&3).unwrap().is_none());
    assert!(kvs
        .index::<User>(UserField::Email, "u3@x.io")
        .unwrap()
        .is_empty());
    assert_eq!(kvs.index::<User>(UserField::City, "Oslo").unwrap().len(), 1);
    let ids: Vec<u64> = kvs
        .feed::<Msg>("room")
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [1, 3, 4], "delete unlinked it from the feed");
    assert_eq!(kvs.writer("room").unwrap().count, 3);
}

#[test]
fn export_then_import_restores_records_indexes_and_counters() {
    let s = Scratch::new();
    let url = app_db(&s);
    let dump = ok(&url, &["export"]);
    assert!(dump
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    let copy = s.url("copy.redb");
    assert!(
        fails(&copy, &["import"]).contains("does not exist"),
        "without --create"
    );
    let out = import(&copy, &dump, &["--create", "--batch", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "quiet when not on a terminal");
    assert!(String::from_utf8_lossy(&out.stdout).contains("imported 14 records"));

    let kvs = Kvs::open(&copy).unwrap();
    assert_eq!(kvs.count::<User>().unwrap(), 6);
    assert_eq!(kvs.get::<Temp>(&-5).unwrap().unwrap().celsius, -10);
    assert_eq!(
        kvs.index::<User>(UserField::City, "Bergen").unwrap().len(),
        2
    );
    assert_eq!(
        kvs.index::<User>(UserField::Email, "u2@x.io").unwrap()[0].id,
        2
    );
    assert_eq!(kvs.seq("users", 1).unwrap(), 7, "the counter came along");
    drop(kvs);
    assert!(ok(&copy, &["check"]).contains("ok"));

    // One table only: its catalog line and records, no counters.
    let users_only = ok(&url, &["export", "users"]);
    assert_eq!(users_only.lines().count(), 7);
    assert!(!users_only.contains("\"seq\""));
}

fn import(url: &str, input: &str, args: &[&str]) -> Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    with_input(url, &all, input.as_bytes())
}

/// Runs `kvs ARGS` with `input` on its standard input.
fn with_input(url: &str, args: &[&str], input: &[u8]) -> Output {
    let mut child = kvs_cmd(url, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_bad_import_line_writes_none_of_its_batch() {
    let s = Scratch::new();
    let url = app_db(&s);
    let rec = |id: u64, email: &str| {
        format!(
            "{{\"table\":\"users\",\"record\":{{\"id\":{id},\"email\":\"{email}\",\"city\":\"Oslo\",\"name\":\"n\"}}}}\n"
        )
    };
    // Batch 1 (lines 1-2) is fine; batch 2 has a line that is not JSON.
    let input = format!(
        "{}{}{}not json\n",
        rec(10, "a@x"),
        rec(11, "b@x"),
        rec(12, "c@x")
    );
    let out = import(&url, &input, &["--batch", "2"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4") && err.contains("lines 3-4"), "{err}");
    let kvs = Kvs::open(&url).unwrap();
    assert!(
        kvs.get::<User>(&11).unwrap().is_some(),
        "the first batch committed"
    );
    assert!(
        kvs.get::<User>(&12).unwrap().is_none(),
        "none of the failed batch"
    );
    drop(kvs);

    // A unique violation inside a batch rolls the whole batch back.
    let input = format!("{}{}", rec(20, "fresh@x"), rec(21, "u1@x.io"));
    let out = import(&url, &input, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("line 2") && err.contains("duplicate"),
        "{err}"
    );
    // A record whose indexed field has the wrong type, and an unknown table.
    let out = import(
        &url,
        "{\"table\":\"users\",\"record\":{\"id\":30,\"email\":5,\"city\":\"x\",\"name\":\"n\"}}\n",
        &[],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("users.email"));
    let out = import(&url, "{\"table\":\"ghosts\",\"record\":{\"id\":1}}\n", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such table"));
    let kvs = Kvs::open(&url).unwrap();
    assert!(kvs.get::<User>(&20).unwrap().is_none());
    assert!(kvs.get::<User>(&30).unwrap().is_none());
    assert_eq!(kvs.count::<User>().unwrap(), 8);
}

#[test]
fn check_finds_broken_indexes_and_repair_rebuilds_them() {
    let s = Scratch::new();
    let url = app_db(&s);
    {
        // Break the city index behind kvs's back: drop one entry, add a stale one.
        let db = redb::Database::open(s.path("app.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def = kvs::redb::table_definition("users#city");
            let mut t = txn.open_table(def).unwrap();
            let first: Vec<u8> = t.first().unwrap().unwrap().0.value().to_vec();
            t.remove(first.as_slice()).unwrap();
            let mut stale = kvs::Key::to_key_bytes(&"Paris".to_owned());
            stale.extend_from_slice(&kvs::Key::to_key_bytes(&99u64));
            t.insert(stale.as_slice(), [].as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let out = run(&url, &["check"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("index city: 1 entries missing"), "{text}");
    assert!(
        text.contains("index city: 1 entries point at no record"),
        "{text}"
    );
    let report = json(&url, &["check", "--repair"]);
    assert_eq!(report["ok"], true);
    assert_eq!(report["repaired"], serde_json::json!(["users"]));
    assert!(ok(&url, &["check"]).contains("users: 6 records, indexes exact"));
    let kvs = Kvs::open(&url).unwrap();
    assert_eq!(kvs.index::<User>(UserField::City, "Paris").unwrap(), []);
    assert_eq!(kvs.index::<User>(UserField::City, "Oslo").unwrap().len(), 2);
}

#[test]
fn piped_commands_run_one_per_line_and_errors_do_not_stop_them() {
    let s = Scratch::new();
    let url = app_db(&s);
    let out = with_input(
        &url,
        &[],
        b"count users\nbogus\nget users 99\n\nget users 2 --json\nexit\ncount users\n",
    );
    assert!(
        !out.status.success(),
        "a failed line makes the exit status non-zero"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.starts_with("6\n"), "{stdout}");
    // A usage error is one line on stderr, like any failed line.
    assert!(
        stderr.contains("unrecognized subcommand 'bogus'"),
        "{stderr}"
    );
    assert!(!stdout.contains("bogus"), "{stdout}");
    assert!(stderr.contains("not found in users: 99"), "{stderr}");
    assert!(stdout.contains("\"email\":\"u2@x.io\""), "{stdout}");
    assert_eq!(
        stdout.matches("6\n").count(),
        1,
        "nothing runs after exit: {stdout}"
    );
}

/// The interactive shell in a real terminal (tmux): line editing, completion, an error that
/// does not end the session. Ignored by default: `cargo test -- --ignored` runs it, and fails
/// where tmux is not installed (CI installs it).
#[test]
#[ignore = "needs tmux (bash .ci/run installs it)"]
fn the_shell_in_a_terminal() {
    assert!(
        Command::new("tmux").arg("-V").output().is_ok(),
        "tmux is not installed: this test runs the console in a tmux terminal \
         (Debian: apt-get install tmux; bash .ci/run installs it)"
    );
    let s = Scratch::new();
    let url = app_db(&s);
    let session = format!("kvs-test-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(["-L", &session])
            .args(args)
            .output()
            .unwrap()
    };
    let shell = format!(
        "env -u KVS_URL HOME={} {} --db {url}",
        s.0.display(),
        env!("CARGO_BIN_EXE_kvs")
    );
    // A plain shell in the terminal, running the console.
    assert!(tmux(&[
        "new-session",
        "-d",
        "-x",
        "150",
        "-y",
        "50",
        "-s",
        &session,
        "env PS1=sh\\> sh"
    ])
    .status
    .success());
    tmux(&["send-keys", "-t", &session, &shell, "Enter"]);
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    // Waits until `what` is on the screen `times` times.
    let wait_n = |what: &str, times: usize| {
        // Up to 30 s: a loaded CI machine may be slow to start the console.
        for _ in 0..600 {
            if screen().matches(what).count() >= times {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{what:?} never appeared {times} times:\n{}", screen());
    };
    let wait_for = |what: &str| wait_n(what, 1);
    wait_for("kvs>");
    // Tab completes the command and the table name.
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "cou",
        "Tab",
        "us",
        "Tab",
        "Enter",
    ]);
    wait_for("kvs> count users\n6");
    tmux(&["send-keys", "-t", &session, "bogus", "Enter"]);
    wait_for("unrecognized subcommand 'bogus'");
    // Completion of an indexed field.
    tmux(&[
        "send-keys",
        "-t",
        &session,
        "index users ci",
        "Tab",
        "Oslo",
        "Enter",
    ]);
    wait_for("(2 records)");
    tmux(&["send-keys", "-t", &session, "get temps -5", "Enter"]);
    wait_for("\"celsius\": -10");
    // History: Up brings back the last line.
    tmux(&["send-keys", "-t", &session, "Up", "Enter"]);
    wait_n("kvs> get temps -5", 2);
    wait_n("\"celsius\": -10", 2);
    tmux(&["send-keys", "-t", &session, "exit", "Enter"]);
    wait_n("sh>", 2); // back in the shell: exit ended the console
                      // On a terminal, export and import draw a progress bar on stderr (with the rate and ETA).
    let export = format!(
        "{} --db {url} export > {}",
        env!("CARGO_BIN_EXE_kvs"),
        s.path("out.jsonl").display()
    );
    tmux(&["send-keys", "-t", &session, &export, "Enter"]);
    wait_for("export [");
    assert!(screen().contains("14/14"), "{}", screen());
    tmux(&["kill-server"]);
    assert!(s.path(".kvs_history").exists(), "history saved at exit");
    assert_eq!(
        std::fs::read_to_string(s.path("out.jsonl"))
            .unwrap()
            .lines()
            .count(),
        18
    );
}

/// The console on the etcd backend. Ignored by default: `cargo test -- --ignored` runs it on
/// the cluster `KVS_TEST_ETCD` names, and fails without one.
#[test]
#[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
fn every_command_works_on_etcd() {
    let cluster = std::env::var("KVS_TEST_ETCD").expect(
        "KVS_TEST_ETCD names no etcd cluster; start one with `scripts/etcd-cluster.sh start` \
         and `export KVS_TEST_ETCD=\"$(scripts/etcd-cluster.sh url)\"` (bash .ci/run does both)",
    );
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // Under `app`, which the TLS test cluster's `kvs` user may use; where the cluster's URL
    // says `PREFIX` (the TLS cluster's, whose parameters follow the prefix), there.
    let base = format!("app-kvs-cli-test/{}-{nanos}", std::process::id());
    let cluster = cluster.trim_end_matches('/');
    let at = |name: &str| {
        if cluster.contains("/PREFIX") {
            cluster.replacen("/PREFIX", &format!("/{base}/{name}"), 1)
        } else {
            format!("{cluster}/{base}/{name}")
        }
    };
    let url = at("app");
    fill(&url);
    assert!(ok(&url, &["dir"]).contains("users"));
    assert!(ok(&url, &["ver"]).contains("etcd"));
    assert!(ok(&url, &["dump"]).contains("cluster"));
    assert_eq!(json(&url, &["count", "users"]), 6);
    assert_eq!(json(&url, &["get", "temps", "-5"])["celsius"], -10);
    assert_eq!(
        json(&url, &["index", "users", "city", "Oslo"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        json(&url, &["all", "users", "--limit", "2", "--from", "3"])[0]["id"],
        3
    );
    assert_eq!(json(&url, &["seq", "users"]), 6);
    assert_eq!(json(&url, &["seq", "users", "1"]), 7);
    assert_eq!(
        json(&url, &["feed", "room", "--back", "--limit", "1"])[0]["id"],
        4
    );
    assert_eq!(json(&url, &["writers"])[0]["count"], 4);
    assert_eq!(json(&url, &["delete", "users", "3"])["deleted"], true);
    assert_eq!(json(&url, &["check"])["ok"], true);
    let dump = ok(&url, &["export"]);
    let copy = at("copy");
    let out = import(&copy, &dump, &["--create"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&copy, &["count", "users"]), 5);
    assert_eq!(json(&copy, &["seq", "users"]), 7);
    assert!(fails(&at("nothing"), &["dir"]).contains("not a kvs database"));
}
