//! Streams: feeds, writers and readers, on every backend.

mod common;

use std::sync::Arc;

use common::{backend_test, TempDir, Word};
use kvs::{Dir, Error, KeyValue, Kvs, Reader, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "msgs")]
struct Msg {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    room: String,
    #[kvs(index, unique)]
    nonce: Option<String>,
    text: String,
}

fn msg(id: u64) -> Msg {
    Msg {
        id,
        room: "general".to_owned(),
        nonce: None,
        text: format!("message {id}"),
    }
}

fn ids(page: &[Msg]) -> Vec<u64> {
    page.iter().map(|m| m.id).collect()
}

/// A feed `name` holding messages `1..=n`, appended in key order.
fn fill(kvs: &Kvs, name: &str, n: u64) {
    kvs.transaction(|tx| {
        for id in 1..=n {
            tx.append(name, &msg(id))?;
        }
        Ok(())
    })
    .unwrap();
}

backend_test! {
    #[test]
    fn pages_forward_until_the_end() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 25);
            let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
            assert_eq!(r.dir, Dir::Forward);
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (1..=10).collect::<Vec<_>>()
            );
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (11..=20).collect::<Vec<_>>()
            );
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (21..=25).collect::<Vec<_>>()
            );
            assert!(kvs.take(&mut r, 10).unwrap().is_empty());
            assert!(kvs.next(&mut r).unwrap().is_none());
            assert_eq!(kvs.take(&mut r, 0).unwrap(), []);
        });
    }
}

backend_test! {
    #[test]
    fn pages_backward_from_the_top() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 25);
            let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
            r.dir = Dir::Backward;
            assert!(
                kvs.take(&mut r, 5).unwrap().is_empty(),
                "a new reader is at the bottom"
            );
            kvs.top(&mut r).unwrap();
            let mut seen = Vec::new();
            loop {
                let page = kvs.take(&mut r, 7).unwrap();
                if page.is_empty() {
                    break;
                }
                seen.extend(ids(&page));
            }
            assert_eq!(
                seen,
                (1..=25).rev().collect::<Vec<_>>(),
                "no repeats, no gaps"
            );
            assert!(kvs.prev(&mut r).unwrap().is_none());
            assert_eq!(kvs.next(&mut r).unwrap().map(|m| m.id), Some(1));
        });
    }
}

backend_test! {
    #[test]
    fn turning_around_neither_repeats_nor_skips() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 30);
            let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (1..=10).collect::<Vec<_>>()
            );
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (11..=20).collect::<Vec<_>>()
            );
            r.dir = Dir::Backward;
            // The cursor is after 20: going back returns 20 first, as a list iterator does.
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (11..=20).rev().collect::<Vec<_>>()
            );
            r.dir = Dir::Forward;
            assert_eq!(
                ids(&kvs.take(&mut r, 10).unwrap()),
                (11..=20).collect::<Vec<_>>()
            );
            // next then prev return the same element, and so do prev then next.
            let n = kvs.next(&mut r).unwrap().unwrap();
            assert_eq!(n.id, 21);
            assert_eq!(kvs.prev(&mut r).unwrap().unwrap(), n);
            let p = kvs.prev(&mut r).unwrap().unwrap();
            assert_eq!(p.id, 20);
            assert_eq!(kvs.next(&mut r).unwrap().unwrap(), p);
        });
    }
}

backend_test! {
    #[test]
    fn top_and_bot_and_skip() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 12);
            let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
            assert_eq!(kvs.skip(&mut r, 5).unwrap(), 5);
            assert_eq!(kvs.next(&mut r).unwrap().unwrap().id, 6);
            assert_eq!(kvs.skip(&mut r, 100).unwrap(), 6, "skips what is left");
            assert!(kvs.next(&mut r).unwrap().is_none());
            r.dir = Dir::Backward;
            assert_eq!(kvs.skip(&mut r, 2).unwrap(), 2);
            assert_eq!(kvs.prev(&mut r).unwrap().unwrap().id, 10);
            kvs.bot(&mut r).unwrap();
            assert_eq!(r.position(), 0);
            assert!(kvs.prev(&mut r).unwrap().is_none());
            assert_eq!(kvs.skip(&mut r, 3).unwrap(), 0, "backward from the bottom");
            kvs.top(&mut r).unwrap();
            assert!(kvs.next(&mut r).unwrap().is_none());
            // A reader at the top sees what is appended later.
            kvs.append("chat", &msg(13)).unwrap();
            assert_eq!(kvs.next(&mut r).unwrap().unwrap().id, 13);
        });
    }
}

backend_test! {
    #[test]
    fn an_unknown_feed_reads_as_empty() {
        on_each_backend(|kvs| {
            let w = kvs.writer("nowhere").unwrap();
            assert_eq!((w.count, w.table, w.first, w.last), (0, None, None, None));
            let mut r: Reader<Msg> = kvs.reader("nowhere").unwrap();
            assert!(kvs.take(&mut r, 10).unwrap().is_empty());
            assert!(kvs.next(&mut r).unwrap().is_none());
            assert!(kvs.prev(&mut r).unwrap().is_none());
            kvs.top(&mut r).unwrap();
            assert_eq!(kvs.skip(&mut r, 4).unwrap(), 0);
            assert!(kvs.feed::<Msg>("nowhere").unwrap().is_empty());
            assert!(!kvs.remove::<Msg>("nowhere", &1).unwrap());
            // Appends after the reader was made are read from where it stands.
            kvs.append("nowhere", &msg(1)).unwrap();
            kvs.bot(&mut r).unwrap();
            assert_eq!(kvs.next(&mut r).unwrap().unwrap().id, 1);
        });
    }
}

backend_test! {
    #[test]
    fn the_writer_counts_and_knows_both_ends() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 4);
            let w = kvs.writer("chat").unwrap();
            assert_eq!(w.feed, "chat");
            assert_eq!(w.table.as_deref(), Some("msgs"));
            assert_eq!(w.count, 4);
            assert_eq!(w.first, Some(KeyValue::Unsigned(1)));
            assert_eq!(w.last, Some(KeyValue::Unsigned(4)));
            assert!(kvs.remove::<Msg>("chat", &1).unwrap());
            assert!(kvs.remove::<Msg>("chat", &4).unwrap());
            let w = kvs.writer("chat").unwrap();
            assert_eq!(w.count, 2);
            assert_eq!(w.first, Some(KeyValue::Unsigned(2)));
            assert_eq!(w.last, Some(KeyValue::Unsigned(3)));
            assert!(kvs.remove::<Msg>("chat", &2).unwrap());
            assert!(kvs.remove::<Msg>("chat", &3).unwrap());
            assert!(!kvs.remove::<Msg>("chat", &3).unwrap());
            let w = kvs.writer("chat").unwrap();
            assert_eq!((w.count, w.first, w.last), (0, None, None));
            assert_eq!(kvs.count::<Msg>().unwrap(), 4, "remove keeps the records");
            // Positions are never reused: a new append goes after everything ever appended.
            kvs.append("chat", &msg(2)).unwrap();
            let w = kvs.writer("chat").unwrap();
            assert_eq!((w.count, w.top), (1, 5));
            let names: Vec<String> = kvs.writers().unwrap().into_iter().map(|w| w.feed).collect();
            assert_eq!(names, ["chat"]);
        });
    }
}

backend_test! {
    #[test]
    fn feed_order_is_append_order_and_appending_again_updates() {
        on_each_backend(|kvs| {
            for id in [5, 1, 3] {
                kvs.append("chat", &msg(id)).unwrap();
            }
            let mut changed = msg(1);
            changed.text = "edited".to_owned();
            kvs.append("chat", &changed).unwrap();
            let feed = kvs.feed::<Msg>("chat").unwrap();
            assert_eq!(ids(&feed), [5, 1, 3], "no second link");
            assert_eq!(feed[1].text, "edited");
            assert_eq!(kvs.writer("chat").unwrap().count, 3);
            // A plain put changes what the feed shows too: it links keys, not copies.
            let mut again = msg(3);
            again.text = "put".to_owned();
            kvs.put(&again).unwrap();
            assert_eq!(kvs.feed::<Msg>("chat").unwrap()[2].text, "put");
            // Indexes are kept by append.
            assert_eq!(
                kvs.index::<Msg>(MsgField::Room, "general").unwrap().len(),
                3
            );
        });
    }
}

backend_test! {
    #[test]
    fn removing_and_deleting_inside_a_page() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 10);
            let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
            assert_eq!(ids(&kvs.take(&mut r, 5).unwrap()), [1, 2, 3, 4, 5]);
            // Ahead of the cursor: skipped when reached.
            assert!(kvs.remove::<Msg>("chat", &6).unwrap());
            assert!(kvs.delete::<Msg>(&7).unwrap());
            // Behind it: not seen when going back.
            assert!(kvs.remove::<Msg>("chat", &5).unwrap());
            assert_eq!(ids(&kvs.take(&mut r, 3).unwrap()), [8, 9, 10]);
            r.dir = Dir::Backward;
            assert_eq!(ids(&kvs.take(&mut r, 10).unwrap()), [10, 9, 8, 4, 3, 2, 1]);
            assert_eq!(kvs.writer("chat").unwrap().count, 7);
            assert!(
                kvs.get::<Msg>(&6).unwrap().is_some(),
                "remove keeps the record"
            );
            assert!(kvs.get::<Msg>(&7).unwrap().is_none(), "delete removes it");
            assert_eq!(
                kvs.index::<Msg>(MsgField::Room, "general").unwrap().len(),
                9
            );
        });
    }
}

backend_test! {
    #[test]
    fn one_record_in_two_feeds_and_delete_unlinks_both() {
        on_each_backend(|kvs| {
            fill(kvs, "a", 3);
            kvs.append("b", &msg(2)).unwrap();
            kvs.append("b", &msg(9)).unwrap();
            assert_eq!(kvs.count::<Msg>().unwrap(), 4);
            assert!(kvs.remove::<Msg>("b", &2).unwrap());
            assert_eq!(
                ids(&kvs.feed::<Msg>("a").unwrap()),
                [1, 2, 3],
                "only b lost it"
            );
            kvs.append("b", &msg(2)).unwrap();
            assert_eq!(
                ids(&kvs.feed::<Msg>("b").unwrap()),
                [9, 2],
                "relinked at the end"
            );
            assert!(kvs.delete::<Msg>(&2).unwrap());
            assert_eq!(ids(&kvs.feed::<Msg>("a").unwrap()), [1, 3]);
            assert_eq!(ids(&kvs.feed::<Msg>("b").unwrap()), [9]);
            assert_eq!(kvs.writer("a").unwrap().count, 2);
            assert_eq!(kvs.writer("b").unwrap().count, 1);
            let w = kvs.writer("b").unwrap();
            assert_eq!(w.first, Some(KeyValue::Unsigned(9)));
            assert_eq!(w.last, Some(KeyValue::Unsigned(9)));
        });
    }
}

#[test]
fn readers_are_saved_and_loaded_across_reopen() {
    let dir = TempDir::new();
    let url = dir.url("feeds.redb");
    let (id, other) = {
        let kvs = Kvs::open(&url).unwrap();
        fill(&kvs, "chat", 10);
        let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
        let other: Reader<Msg> = kvs.reader("chat").unwrap();
        assert_ne!(r.id, other.id, "ids come from a counter");
        kvs.skip(&mut r, 4).unwrap();
        r.dir = Dir::Backward;
        kvs.save_reader(&r).unwrap();
        (r.id, other.id)
    };
    let kvs = Kvs::open(&url).unwrap();
    let mut r: Reader<Msg> = kvs.load_reader(id).unwrap();
    assert_eq!(
        (r.feed.as_str(), r.dir, r.position()),
        ("chat", Dir::Backward, 4)
    );
    assert_eq!(ids(&kvs.take(&mut r, 2).unwrap()), [4, 3]);
    let fresh: Reader<Msg> = kvs.load_reader(other).unwrap();
    assert_eq!(fresh.position(), 0, "saved when made");
    let third: Reader<Msg> = kvs.reader("chat").unwrap();
    assert!(third.id > id.max(other), "the counter survived the reopen");
    assert!(kvs.remove_reader(other).unwrap());
    match kvs.load_reader::<Msg>(other) {
        Err(Error::NotFound { table, key }) => {
            assert_eq!((table.as_str(), key), ("#reader", other.to_string()));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        kvs.load_reader::<Msg>(987_654),
        Err(Error::NotFound { .. })
    ));
}

backend_test! {
    #[test]
    fn a_feed_holds_one_table() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 2);
            let word = Word {
                text: "hi".to_owned(),
                count: 1,
            };
            match kvs.append("chat", &word) {
                Err(Error::Schema { table, reason }) => {
                    assert_eq!(table, "word");
                    assert!(reason.contains("msgs"), "{reason}");
                }
                other => panic!("expected Schema, got {other:?}"),
            }
            assert!(
                kvs.get::<Word>(&"hi".to_owned()).unwrap().is_none(),
                "nothing written"
            );
            assert!(matches!(
                kvs.reader::<Word>("chat"),
                Err(Error::Schema { .. })
            ));
            assert!(matches!(
                kvs.feed::<Word>("chat"),
                Err(Error::Schema { .. })
            ));
            let r: Reader<Msg> = kvs.reader("chat").unwrap();
            kvs.save_reader(&r).unwrap();
            match kvs.load_reader::<Word>(r.id) {
                Err(Error::Schema { table, reason }) => {
                    assert_eq!(table, "word");
                    assert!(reason.contains("msgs"), "{reason}");
                }
                other => panic!("expected Schema, got {other:?}"),
            }
            // A reader made on an empty feed finds out at its first read.
            let mut early: Reader<Word> = kvs.reader("later").unwrap();
            kvs.append("later", &msg(1)).unwrap();
            assert!(matches!(kvs.take(&mut early, 1), Err(Error::Schema { .. })));
        });
    }
}

backend_test! {
    #[test]
    fn a_failed_append_writes_nothing() {
        on_each_backend(|kvs| {
            let mut first = msg(1);
            first.nonce = Some("n".to_owned());
            kvs.append("chat", &first).unwrap();
            let mut clash = msg(2);
            clash.nonce = Some("n".to_owned());
            assert!(matches!(
                kvs.append("chat", &clash),
                Err(Error::Duplicate { .. })
            ));
            assert_eq!(kvs.writer("chat").unwrap().count, 1);
            assert!(kvs.get::<Msg>(&2).unwrap().is_none());

            let err = kvs.transaction(|tx| {
                tx.append("chat", &msg(3))?;
                tx.append("other", &msg(4))?;
                assert_eq!(
                    tx.writer("chat")?.count,
                    2,
                    "a transaction sees its own appends"
                );
                assert_eq!(ids(&tx.feed::<Msg>("chat")?), [1, 3]);
                tx.append("chat", &clash)?; // fails: the whole transaction rolls back
                Ok(())
            });
            assert!(matches!(err, Err(Error::Duplicate { .. })));
            assert_eq!(kvs.writer("chat").unwrap().count, 1);
            assert_eq!(kvs.writer("other").unwrap().count, 0);
            assert_eq!(kvs.count::<Msg>().unwrap(), 1);
            assert_eq!(ids(&kvs.feed::<Msg>("chat").unwrap()), [1]);
        });
    }
}

backend_test! {
    #[test]
    fn concurrent_appends_lose_nothing() {
        on_each_backend(|kvs| {
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    s.spawn(move || {
                        for i in 0..50 {
                            kvs.append("busy", &msg(t * 1000 + i)).unwrap();
                        }
                    });
                }
            });
            let w = kvs.writer("busy").unwrap();
            assert_eq!((w.count, w.top), (400, 400), "one position per append");
            let mut got = ids(&kvs.feed::<Msg>("busy").unwrap());
            // Each thread's appends keep their order within the feed.
            for t in 0..8u64 {
                let mine: Vec<u64> = got.iter().copied().filter(|id| id / 1000 == t).collect();
                assert_eq!(mine, (0..50).map(|i| t * 1000 + i).collect::<Vec<_>>());
            }
            got.sort_unstable();
            got.dedup();
            assert_eq!(got.len(), 400);
        });
    }
}

/// One thread of `many_writers_share_feeds_and_fail_alone`: appends new messages to the shared
/// feed and to a feed of its own, removes every third from the shared one, and makes 1 call in
/// 8 fail (a duplicate nonce, a feed of another table); pages its own feed with a reader that
/// it saves, reloads and removes. Returns its messages left in the shared feed, in order.
fn feed_writer(kvs: &Kvs, t: u64, steps: u64) -> Vec<u64> {
    let own = format!("own-{t}");
    let mut shared = Vec::new();
    for i in 0..steps {
        let m = msg(t * 1_000 + i);
        match i % 8 {
            7 => {
                let clash = Msg {
                    nonce: Some("taken".to_owned()),
                    ..m
                };
                assert!(matches!(
                    kvs.append("shared", &clash),
                    Err(Error::Duplicate { .. })
                ));
            }
            6 => {
                let word = Word {
                    text: format!("w{t}.{i}"),
                    count: 1,
                };
                assert!(matches!(kvs.append(&own, &word), Err(Error::Schema { .. })));
            }
            _ => {
                kvs.append("shared", &m).unwrap();
                kvs.append(&own, &m).unwrap();
                shared.push(m.id);
                if i % 3 == 2 {
                    let gone = shared.remove(shared.len() / 2);
                    assert!(kvs.remove::<Msg>("shared", &gone).unwrap());
                    assert!(!kvs.remove::<Msg>("shared", &gone).unwrap());
                }
            }
        }
    }
    let mut r: Reader<Msg> = kvs.reader(&own).unwrap();
    let first = ids(&kvs.take(&mut r, 2).unwrap());
    kvs.save_reader(&r).unwrap();
    let mut again: Reader<Msg> = kvs.load_reader(r.id).unwrap();
    let rest = ids(&kvs.take(&mut again, usize::MAX).unwrap());
    let mine: Vec<u64> = (0..steps)
        .filter(|i| i % 8 < 6)
        .map(|i| t * 1_000 + i)
        .collect();
    assert_eq!([first, rest].concat(), mine, "feed {own}");
    assert!(kvs.remove_reader(r.id).unwrap());
    assert!(matches!(
        kvs.load_reader::<Msg>(r.id),
        Err(Error::NotFound { .. })
    ));
    shared
}

backend_test! {
    /// Appends, removes and reader calls from many threads at once share commits (on etcd,
    /// batches with their reads fetched together); a call that fails fails alone, and the
    /// feeds, their writers and the records stay exact.
    #[test]
    fn many_writers_share_feeds_and_fail_alone() {
        on_each_backend(|kvs| {
            const THREADS: u64 = 16;
            const STEPS: u64 = 24;
            let taken = Msg {
                nonce: Some("taken".to_owned()),
                ..msg(999_999)
            };
            kvs.put(&taken).unwrap();
            kvs.put(&Word {
                text: "w".to_owned(),
                count: 0,
            })
            .unwrap();
            let kept: Vec<Vec<u64>> = std::thread::scope(|s| {
                let threads: Vec<_> = (0..THREADS)
                    .map(|t| s.spawn(move || feed_writer(kvs, t, STEPS)))
                    .collect();
                threads.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let feed = ids(&kvs.feed::<Msg>("shared").unwrap());
            for (t, mine) in kept.iter().enumerate() {
                let t = t as u64;
                let got: Vec<u64> = feed.iter().copied().filter(|id| id / 1_000 == t).collect();
                assert_eq!(&got, mine, "thread {t}'s messages, in append order");
            }
            let appended = THREADS * (0..STEPS).filter(|i| i % 8 < 6).count() as u64;
            let w = kvs.writer("shared").unwrap();
            assert_eq!(w.count, feed.len() as u64);
            assert_eq!(w.count, kept.iter().map(|k| k.len() as u64).sum::<u64>());
            assert_eq!(w.top, appended, "one position per append, none for a failed one");
            for t in 0..THREADS {
                let own = kvs.writer(&format!("own-{t}")).unwrap();
                assert_eq!(own.count, appended / THREADS);
            }
            // Records stay when unlinked; failed appends wrote nothing.
            assert_eq!(kvs.count::<Msg>().unwrap(), appended + 1);
            assert_eq!(kvs.count::<Word>().unwrap(), 1);
            assert_eq!(
                kvs.index::<Msg>(MsgField::Nonce, "taken").unwrap(),
                [taken]
            );
            let dump = kvs.dump().unwrap();
            let readers = dump.rows.iter().find(|r| r.name == "#reader").unwrap();
            assert_eq!(readers.elements, 0, "every reader removed");
        });
    }
}

#[test]
fn readers_on_shared_handles_are_independent() {
    let kvs = Arc::new(Kvs::open("mem:").unwrap());
    fill(&kvs, "chat", 6);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let kvs = Arc::clone(&kvs);
            std::thread::spawn(move || {
                let mut r: Reader<Msg> = kvs.reader("chat").unwrap();
                let mut all = Vec::new();
                loop {
                    let page = kvs.take(&mut r, 4).unwrap();
                    if page.is_empty() {
                        break (r.id, all);
                    }
                    all.extend(ids(&page));
                }
            })
        })
        .collect();
    let mut ids_seen = Vec::new();
    for h in handles {
        let (id, all) = h.join().unwrap();
        assert_eq!(all, [1, 2, 3, 4, 5, 6]);
        ids_seen.push(id);
    }
    ids_seen.sort_unstable();
    ids_seen.dedup();
    assert_eq!(ids_seen.len(), 4, "every reader got its own id");
}

backend_test! {
    #[test]
    fn dir_and_dump_show_the_stream_tables() {
        on_each_backend(|kvs| {
            fill(kvs, "chat", 3);
            let r: Reader<Msg> = kvs.reader("chat").unwrap();
            kvs.save_reader(&r).unwrap();
            let dir = kvs.dir().unwrap();
            let writer = dir.iter().find(|t| t.name == "#writer").unwrap();
            assert_eq!(
                (writer.schema.as_str(), writer.key_field.as_str()),
                ("kvs_stream", "feed")
            );
            assert!(dir.iter().any(|t| t.name == "#reader"));
            let dump = kvs.dump().unwrap();
            let elements = |name: &str| dump.rows.iter().find(|r| r.name == name).unwrap().elements;
            assert_eq!(elements("#writer"), 1);
            assert_eq!(elements("#reader"), 1);
            assert_eq!(elements("#feed"), 3);
            assert_eq!(elements("#link"), 3);
            assert!(dump.to_string().contains("#writer"));
        });
    }
}

#[test]
fn streams_follow_the_schemas_list() {
    let kvs = Kvs::open("mem:?schemas=msgs").unwrap();
    assert!(!kvs.dir().unwrap().iter().any(|t| t.name == "#writer"));
    match kvs.append("chat", &msg(1)) {
        Err(Error::Schema { table, .. }) => assert_eq!(table, "kvs_stream"),
        other => panic!("expected Schema, got {other:?}"),
    }
    let kvs = Kvs::open("mem:?schemas=msgs,kvs_stream").unwrap();
    kvs.append("chat", &msg(1)).unwrap();
    assert_eq!(kvs.writer("chat").unwrap().count, 1);
}

/// The property test: random operations on two feeds and one reader, checked step by step
/// against a model of the feeds as `Vec`s of keys and the cursor as an index into one.
mod model {
    use super::{ids, msg, Msg};
    use kvs::{Dir, Error, Kvs, Reader};
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Append(usize, u64),
        Remove(usize, u64),
        Delete(u64),
        Put(u64),
        Take(Dir, usize),
        Skip(Dir, usize),
        Next,
        Prev,
        Top,
        Bot,
        SaveLoad,
        AbortedAppend(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let feed = 0..2usize;
        let key = 0..8u64;
        let dir = prop_oneof![Just(Dir::Forward), Just(Dir::Backward)];
        prop_oneof![
            4 => (feed.clone(), key.clone()).prop_map(|(f, k)| Op::Append(f, k)),
            2 => (feed.clone(), key.clone()).prop_map(|(f, k)| Op::Remove(f, k)),
            1 => key.clone().prop_map(Op::Delete),
            1 => key.clone().prop_map(Op::Put),
            3 => (dir.clone(), 0..5usize).prop_map(|(d, n)| Op::Take(d, n)),
            1 => (dir, 0..5usize).prop_map(|(d, n)| Op::Skip(d, n)),
            2 => Just(Op::Next),
            2 => Just(Op::Prev),
            1 => Just(Op::Top),
            1 => Just(Op::Bot),
            1 => Just(Op::SaveLoad),
            1 => (feed, key).prop_map(|(f, k)| Op::AbortedAppend(f, k)),
        ]
    }

    const FEEDS: [&str; 2] = ["f0", "f1"];

    /// The model: records by key, each feed's keys in order, and the reader (on feed 0) as
    /// the number of elements behind its cursor.
    #[derive(Default)]
    struct Model {
        texts: std::collections::BTreeMap<u64, String>,
        feeds: [Vec<u64>; 2],
        cursor: usize,
    }

    impl Model {
        fn unlink(&mut self, f: usize, k: u64) -> bool {
            let Some(j) = self.feeds[f].iter().position(|&x| x == k) else {
                return false;
            };
            self.feeds[f].remove(j);
            if f == 0 && j < self.cursor {
                self.cursor -= 1;
            }
            true
        }

        /// The keys a move of up to `n` in `dir` passes, in order, moving the cursor.
        fn step(&mut self, dir: Dir, n: usize) -> Vec<u64> {
            let feed = &self.feeds[0];
            match dir {
                Dir::Forward => {
                    let end = (self.cursor + n).min(feed.len());
                    let out = feed[self.cursor..end].to_vec();
                    self.cursor = end;
                    out
                }
                Dir::Backward => {
                    let start = self.cursor.saturating_sub(n);
                    let out: Vec<u64> = feed[start..self.cursor].iter().rev().copied().collect();
                    self.cursor = start;
                    out
                }
            }
        }
    }

    fn text(k: u64, step: usize) -> String {
        format!("{k} at step {step}")
    }

    fn run(kvs: &Kvs, ops: &[Op]) {
        let mut m = Model::default();
        let mut r: Reader<Msg> = kvs.reader(FEEDS[0]).unwrap();
        for (step, op) in ops.iter().enumerate() {
            let record = |k: u64| Msg {
                text: text(k, step),
                ..msg(k)
            };
            match *op {
                Op::Append(f, k) => {
                    kvs.append(FEEDS[f], &record(k)).unwrap();
                    m.texts.insert(k, text(k, step));
                    if !m.feeds[f].contains(&k) {
                        m.feeds[f].push(k);
                    }
                }
                Op::Remove(f, k) => {
                    assert_eq!(kvs.remove::<Msg>(FEEDS[f], &k).unwrap(), m.unlink(f, k));
                }
                Op::Delete(k) => {
                    let existed = m.texts.remove(&k).is_some();
                    m.unlink(0, k);
                    m.unlink(1, k);
                    assert_eq!(kvs.delete::<Msg>(&k).unwrap(), existed);
                }
                Op::Put(k) => {
                    kvs.put(&record(k)).unwrap();
                    m.texts.insert(k, text(k, step));
                }
                Op::Take(dir, n) => {
                    r.dir = dir;
                    let page = kvs.take(&mut r, n).unwrap();
                    let want = m.step(dir, n);
                    assert_eq!(ids(&page), want, "take {n} {dir:?}");
                    for got in &page {
                        assert_eq!(Some(&got.text), m.texts.get(&got.id));
                    }
                }
                Op::Skip(dir, n) => {
                    r.dir = dir;
                    assert_eq!(kvs.skip(&mut r, n).unwrap(), m.step(dir, n).len());
                }
                Op::Next => {
                    let got = kvs.next(&mut r).unwrap().map(|g| g.id);
                    assert_eq!(got, m.step(Dir::Forward, 1).pop());
                }
                Op::Prev => {
                    let got = kvs.prev(&mut r).unwrap().map(|g| g.id);
                    assert_eq!(got, m.step(Dir::Backward, 1).pop());
                }
                Op::Top => {
                    kvs.top(&mut r).unwrap();
                    m.cursor = m.feeds[0].len();
                }
                Op::Bot => {
                    kvs.bot(&mut r).unwrap();
                    m.cursor = 0;
                }
                Op::SaveLoad => {
                    kvs.save_reader(&r).unwrap();
                    let loaded: Reader<Msg> = kvs.load_reader(r.id).unwrap();
                    assert_eq!(loaded, r);
                    r = loaded;
                }
                Op::AbortedAppend(f, k) => {
                    let out: Result<(), Error> = kvs.transaction(|tx| {
                        tx.append(FEEDS[f], &record(k))?;
                        Err(Error::Conflict {
                            reason: "rolled back on purpose".to_owned(),
                        })
                    });
                    assert!(out.is_err());
                }
            }
            for (name, want) in FEEDS.iter().zip(&m.feeds) {
                let w = kvs.writer(name).unwrap();
                assert_eq!(w.count, want.len() as u64, "count of {name}");
                assert_eq!(&ids(&kvs.feed::<Msg>(name).unwrap()), want);
            }
            assert_eq!(kvs.count::<Msg>().unwrap(), m.texts.len() as u64);
        }
    }

    /// Twins as `backend_test!` makes them: on the local backends, and (ignored without a
    /// cluster) on etcd.
    mod feeds_and_a_reader_follow_the_model {
        use super::{op, run};
        use crate::common::{on_etcd, on_local_backends};
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn local(ops in proptest::collection::vec(op(), 1..60)) {
                on_local_backends(|kvs| run(kvs, &ops));
            }

            #[test]
            #[ignore = "needs an etcd cluster: set KVS_TEST_ETCD (bash .ci/run starts one)"]
            fn etcd(ops in proptest::collection::vec(op(), 1..60)) {
                on_etcd(|kvs| run(kvs, &ops));
            }
        }
    }
}
