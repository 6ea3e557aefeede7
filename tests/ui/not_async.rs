#[rust_tcp::service]
pub trait Kv {
    fn get(key: String) -> Option<String>;
}

fn main() {}
