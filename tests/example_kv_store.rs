//! The `kv_store` example is real: it runs here against a real server.

#[path = "../examples/kv_store.rs"]
mod kv_store;

#[tokio::test]
async fn the_key_value_example_works() {
    let seen = kv_store::demo().await.unwrap();
    assert_eq!(
        seen,
        [
            "writer: SET colour blue -> OK",
            "watcher: pushed changed colour",
            "watcher: GET colour -> blue",
            "watcher: GET size -> request failed: no such key \"size\"",
        ]
    );
}
