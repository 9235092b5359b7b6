use kvs::Table;
use serde::{Deserialize, Serialize};

// Fields are stored by position: every field serde writes must be one it reads back, in the
// same place, so the attributes that leave a hole are refused.

#[derive(Table, Serialize, Deserialize)]
struct SkippedWhenNone {
    #[kvs(key)]
    id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nick: Option<String>,
}

#[derive(Table, Serialize, Deserialize)]
struct WrittenNotRead {
    #[kvs(key)]
    id: u64,
    #[serde(skip_deserializing)]
    cached: u32,
}

#[derive(Table, Serialize, Deserialize)]
struct ReadNotWritten {
    #[kvs(key)]
    id: u64,
    #[serde(skip_serializing)]
    legacy: u32,
}

// Both halves of skip, or skip itself, leave the field out of the record: fine.
#[derive(Table, Serialize, Deserialize)]
struct Skipped {
    #[kvs(key)]
    id: u64,
    #[serde(skip_serializing, skip_deserializing)]
    a: u32,
    #[serde(skip)]
    b: u32,
}

fn main() {}
