#[rust_tcp::service]
pub trait Kv {
    async fn get((a, b): (String, String)) -> Option<String>;
}

fn main() {}
