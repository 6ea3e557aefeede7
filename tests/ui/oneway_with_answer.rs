#[rust_tcp::service]
pub trait Kv {
    #[oneway]
    async fn log(line: String) -> bool;
}

fn main() {}
