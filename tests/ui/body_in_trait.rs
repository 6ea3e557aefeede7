#[rust_tcp::service]
pub trait Kv {
    async fn get(key: String) -> Option<String> {
        None
    }
}

fn main() {}
