//! Compile-time checks of the derive and of the typed API, pinned with their messages.
//!
//! Regenerate the expected output after an intended change with
//! `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    // A passing case makes trybuild run `cargo build`, which also reports the post-
    // monomorphization check of `index` values.
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
