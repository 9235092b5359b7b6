use kvs::Table;
use serde::{Deserialize, Serialize};

#[derive(Table, Serialize, Deserialize)]
struct Inner {
    #[kvs(key)]
    id: u64,
}

#[derive(Table, Serialize, Deserialize)]
struct Flattened {
    #[kvs(key)]
    id: u64,
    #[serde(flatten)]
    extra: std::collections::HashMap<String, u32>,
}

#[derive(Table, Serialize, Deserialize)]
struct KeySkipped {
    #[kvs(key)]
    #[serde(skip)]
    id: u64,
}

#[derive(Table, Serialize, Deserialize)]
struct IndexPredicate {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    #[serde(skip_serializing_if = "String::is_empty")]
    city: String,
}

#[derive(Table, Serialize, Deserialize)]
struct IndexWith {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    #[serde(with = "custom")]
    city: String,
}

#[derive(Table, Serialize, Deserialize)]
#[serde(tag = "type")]
struct Tagged {
    #[kvs(key)]
    id: u64,
}

#[derive(Table, Serialize, Deserialize)]
struct SplitName {
    #[kvs(key)]
    #[serde(rename(serialize = "ID", deserialize = "id"))]
    id: u64,
}

#[derive(Table, Serialize, Deserialize)]
struct IndexDefault {
    #[kvs(key)]
    id: u64,
    #[kvs(index)]
    #[serde(default)]
    city: String,
}

mod custom {
    pub fn serialize<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

fn main() {}
