//! The key encoding: every value decodes back to itself from exactly its bytes, byte order is
//! the values' order, and decoding or rendering arbitrary bytes as any key type never panics.
#![no_main]
#![forbid(unsafe_code)]

use kvs::{Key, KeyType, KeyValue};
use libfuzzer_sys::fuzz_target;

type Wide = (i64, String, u128, Vec<u8>);
type Mixed = (bool, char, i8, (u16, i128));

fn round_trip<K: Key + Ord>(a: &K, b: &K, expect_a: KeyValue) {
    let (ea, eb) = (a.to_key_bytes(), b.to_key_bytes());
    assert_eq!(a.cmp(b), ea.cmp(&eb), "order");
    if a != b {
        assert!(!ea.starts_with(&eb) && !eb.starts_with(&ea), "prefix-free");
    }
    let mut rest = ea.as_slice();
    assert_eq!(
        K::key_type().decode(&mut rest),
        Some(expect_a),
        "round trip"
    );
    assert!(rest.is_empty(), "decode left bytes");
}

fn value_of_wide(w: &Wide) -> KeyValue {
    KeyValue::Tuple(vec![
        KeyValue::Signed(i128::from(w.0)),
        KeyValue::String(w.1.clone()),
        KeyValue::Unsigned(w.2),
        KeyValue::Bytes(w.3.clone()),
    ])
}

fn value_of_mixed(m: &Mixed) -> KeyValue {
    KeyValue::Tuple(vec![
        KeyValue::Bool(m.0),
        KeyValue::Char(m.1),
        KeyValue::Signed(i128::from(m.2)),
        KeyValue::Tuple(vec![
            KeyValue::Unsigned(u128::from(m.3 .0)),
            KeyValue::Signed(m.3 .1),
        ]),
    ])
}

fuzz_target!(|input: (Wide, Wide, Mixed, Mixed, Vec<u8>)| {
    let (wa, wb, ma, mb, raw) = input;
    round_trip(&wa, &wb, value_of_wide(&wa));
    round_trip(&ma, &mb, value_of_mixed(&ma));
    round_trip(&wa.1, &wb.1, KeyValue::String(wa.1.clone()));
    round_trip(&wa.3, &wb.3, KeyValue::Bytes(wa.3.clone()));
    // Arbitrary bytes, as every key type: decoded or refused, never a panic.
    for ty in [
        <Wide as Key>::key_type(),
        <Mixed as Key>::key_type(),
        KeyType::String,
        KeyType::Bytes,
        KeyType::Char,
        KeyType::U64,
        KeyType::I128,
    ] {
        let mut rest = raw.as_slice();
        if let Some(value) = ty.decode(&mut rest) {
            let _ = value.to_string();
        }
        let _ = ty.render(&raw);
    }
});
