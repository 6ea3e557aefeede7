#[rust_tcp::service]
pub trait Kv {
    async fn get(key: String) -> Result<String, std::io::ErrorKind>;
    async fn set(key: String, value: String) -> Result<(), String>;
}

fn main() {}
