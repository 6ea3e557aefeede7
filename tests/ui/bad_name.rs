#[rust_tcp::service(name = "key value")]
pub trait Kv {
    async fn get(key: String) -> Option<String>;
}

fn main() {}
