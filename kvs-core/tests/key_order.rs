//! The key encoding keeps the natural order of every supported type and decodes back to the
//! value, for arbitrary values.

use kvs_core::{Key, KeyType, KeyValue};
use proptest::prelude::*;

fn check_pair<K: Key + Ord + std::fmt::Debug>(a: &K, b: &K) -> Result<(), TestCaseError> {
    let (ea, eb) = (a.to_key_bytes(), b.to_key_bytes());
    prop_assert_eq!(a.cmp(b), ea.cmp(&eb), "{:?} vs {:?}", a, b);
    // Prefix-free: no encoding of one value starts another, unless they are equal.
    if a != b {
        prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
    }
    let mut rest = ea.as_slice();
    let decoded = K::key_type().decode(&mut rest);
    prop_assert!(rest.is_empty());
    // The untyped encoder (the console's) is the exact inverse of decode.
    let mut again = Vec::new();
    prop_assert!(K::key_type().encode(&decoded.expect("decodes"), &mut again));
    prop_assert_eq!(again, ea);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn signed(a: i64, b: i64) { check_pair(&a, &b)?; }

    #[test]
    fn small_signed(a: i8, b: i8) { check_pair(&a, &b)?; }

    #[test]
    fn wide(a: i128, b: u128, c: i128, d: u128) { check_pair(&(a, b), &(c, d))?; }

    #[test]
    fn strings(a in "[a\\x00\\xff-\\u{10ffff}]{0,8}", b in "[a\\x00\\xff-\\u{10ffff}]{0,8}") {
        check_pair(&a, &b)?;
    }

    #[test]
    fn bytes(a in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff), any::<u8>()], 0..8),
             b in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff), any::<u8>()], 0..8)) {
        check_pair(&a, &b)?;
    }

    #[test]
    fn tuples(a: (bool, char, String, i32), b: (bool, char, String, i32)) {
        check_pair(&a, &b)?;
    }

    #[test]
    fn decoded_values_equal_the_originals(a: i16, s: String, v: Vec<u8>) {
        let bytes = (a, s.clone(), v.clone()).to_key_bytes();
        let decoded = <(i16, String, Vec<u8>)>::key_type().decode(&mut bytes.as_slice());
        prop_assert_eq!(decoded, Some(KeyValue::Tuple(vec![
            KeyValue::Signed(i128::from(a)),
            KeyValue::String(s),
            KeyValue::Bytes(v),
        ])));
    }

    #[test]
    fn garbage_never_panics(bytes: Vec<u8>) {
        for ty in [KeyType::U64, KeyType::String, KeyType::Char, KeyType::Tuple(vec![KeyType::Bytes, KeyType::I8])] {
            let _ = ty.decode(&mut bytes.as_slice());
            let _ = ty.render(&bytes);
        }
    }
}
