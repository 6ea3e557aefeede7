//! `#[rust_tcp::service]` on traits it cannot serve: each fails to compile
//! with an error that says what to change (`tests/ui/*.stderr` holds the
//! expected messages; `TRYBUILD=overwrite cargo test --test
//! service_macro_errors` rewrites them after a deliberate change).

#[test]
fn a_bad_service_trait_fails_with_what_to_change() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
