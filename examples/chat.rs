//! A small chat history on kvs streams: rooms are feeds, messages are records, and a reader
//! pages back through a room's history the way a chat client scrolls up.
//!
//! `cargo run --example chat` (writes `chat.redb` in the current directory and starts afresh
//! each run; `KVS_URL=mem: cargo run --example chat` keeps it in memory).

use kvs::{Dir, Kvs, Reader, Table};
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kvs(name = "messages")]
struct Message {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    author: String,
    text: String,
}

fn say(kvs: &Kvs, room: &str, author: &str, text: &str) -> kvs::Result<u64> {
    // The id and the message commit together: no id is used twice, none is lost.
    kvs.transaction(|tx| {
        let id = tx.seq("messages", 1)?;
        tx.append(
            room,
            &Message {
                id,
                author: author.to_owned(),
                text: text.to_owned(),
            },
        )?;
        Ok(id)
    })
}

fn show(page: &[Message]) {
    for m in page {
        println!("  #{:<3} {:>5}: {}", m.id, m.author, m.text);
    }
}

fn main() -> kvs::Result<()> {
    let url = std::env::var(kvs::KVS_URL).unwrap_or_else(|_| {
        let _ = std::fs::remove_file("chat.redb");
        "redb:chat.redb".to_owned()
    });
    let kvs = Kvs::open(&url)?;

    let authors = ["ann", "bob", "cid"];
    for i in 1..=23 {
        let author = authors[i % authors.len()];
        say(&kvs, "general", author, &format!("general chatter {i}"))?;
        if i % 4 == 0 {
            say(
                &kvs,
                "random",
                author,
                &format!("a random thought {}", i / 4),
            )?;
        }
    }
    let oops = say(&kvs, "general", "bob", "a message bob regrets")?;
    kvs.delete::<Message>(&oops)?; // gone from the table and from every room

    for w in kvs.writers()? {
        println!("room {w}");
    }

    // Scroll up through #general, ten at a time, from the newest message.
    let mut r: Reader<Message> = kvs.reader("general")?;
    r.dir = Dir::Backward;
    kvs.top(&mut r)?;
    println!("\n#general, newest first, pages of 10:");
    let first_page = kvs.take(&mut r, 10)?;
    show(&first_page);
    println!("  -- scroll up --");
    show(&kvs.take(&mut r, 10)?);

    // The client closes; its place in the history is saved and resumed by id.
    kvs.save_reader(&r)?;
    let mut resumed: Reader<Message> = kvs.load_reader(r.id)?;
    println!("  -- reader {} resumed --", resumed.id);
    let rest = kvs.take(&mut resumed, 10)?;
    show(&rest);
    assert!(
        kvs.take(&mut resumed, 10)?.is_empty(),
        "the top of the history"
    );

    // Scrolling back down returns the same messages in order, none repeated or skipped.
    resumed.dir = Dir::Forward;
    let down = kvs.take(&mut resumed, 3)?;
    println!("\nand back down 3:");
    show(&down);
    let rest_ids: Vec<u64> = rest.iter().rev().map(|m| m.id).collect();
    assert_eq!(down.iter().map(|m| m.id).collect::<Vec<_>>(), rest_ids[..3]);

    println!("\nall of #random, oldest first:");
    show(&kvs.feed::<Message>("random")?);
    println!(
        "\nby ann: {} messages",
        kvs.index::<Message>(MessageField::Author, "ann")?.len()
    );
    println!("\n{}", kvs.dump()?);
    Ok(())
}
