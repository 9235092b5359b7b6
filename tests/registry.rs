//! The schema list is whatever tables are linked into the program: tables of this crate and of
//! the library crates it uses, found through `inventory` before `main`.

mod common;

use common::User;
use kvs::{Kvs, Table};
use kvs_fixture_billing::{Invoice, InvoiceField};

#[test]
fn tables_of_a_dependency_crate_are_registered() {
    let names: Vec<&str> = kvs::registered_tables().iter().map(|m| m.name).collect();
    assert!(names.contains(&"invoices"), "{names:?}");
    assert!(names.contains(&"users"), "{names:?}");
    assert!(
        names.windows(2).all(|w| w[0] <= w[1]),
        "sorted by name: {names:?}"
    );

    let kvs = Kvs::open("mem:").unwrap();
    kvs.put(&Invoice {
        number: 7,
        customer: "ann".into(),
        total: 1200,
    })
    .unwrap();
    assert_eq!(
        kvs.index::<Invoice>(InvoiceField::Customer, "ann")
            .unwrap()
            .len(),
        1
    );
    kvs.put(&User::new(1, "ann@x.io", "Oslo")).unwrap();
}

#[test]
fn metainfo_describes_the_table() {
    let meta = &Invoice::META;
    assert_eq!(
        (meta.name, meta.schema, meta.key_field),
        ("invoices", "billing", "number")
    );
    assert_eq!(meta.rust_type, "kvs_fixture_billing::Invoice");
    assert_eq!(meta.fields, ["number", "customer", "total"]);
    assert_eq!(meta.indexes.len(), 1);
    assert_eq!(
        (meta.indexes[0].field, meta.indexes[0].table),
        ("customer", "invoices#customer")
    );
    assert!(!meta.indexes[0].unique);
    assert_eq!((meta.key_type)(), kvs::KeyType::U64);
}

#[test]
fn a_schema_selects_the_tables_of_one_crate() {
    let kvs = Kvs::open("mem:?schemas=billing").unwrap();
    let names: Vec<String> = kvs.dir().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["invoices"]);
}
