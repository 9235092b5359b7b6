use kvs::KeyEnum;
use serde::{Deserialize, Serialize};

#[derive(KeyEnum, Serialize, Deserialize)]
enum WithData {
    Plain,
    Data(u32),
}

#[derive(KeyEnum, Serialize, Deserialize)]
struct NotAnEnum {
    x: u32,
}

#[derive(KeyEnum, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    A,
}

fn main() {}
