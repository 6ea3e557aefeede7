//! The `kv_store` example is real: it runs here against a real server, on
//! the typed layer.

#[path = "../examples/kv_store.rs"]
mod kv_store;

#[tokio::test]
async fn the_key_value_example_works() {
    let seen = kv_store::demo().await.unwrap();
    assert_eq!(
        seen,
        [
            r#"writer: Set { key: "colour", value: "blue" } -> Done"#,
            r#"watcher: pushed Changed { key: "colour", value: "blue" }"#,
            r#"watcher: Get colour -> Value("blue")"#,
            r#"watcher: Get size -> error NoSuchKey("size")"#,
        ]
    );
}
