#[rust_tcp::service]
pub trait Kv {
    async fn connect(addr: String) -> bool;
}

fn main() {}
