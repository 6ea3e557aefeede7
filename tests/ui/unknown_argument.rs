#[rust_tcp::service(name = "kv", version = 2)]
pub trait Kv {
    async fn get(key: String) -> Option<String>;
}

fn main() {}
