#[rust_tcp::service]
pub trait Kv {
    async fn get(key: String) -> Option<String>;
}

struct Store;

impl Kv for Store {}

fn main() {}
