use rust_tcp::typed::Stream;

#[rust_tcp::service]
pub trait Feed {
    async fn lines() -> Stream<String>;
    async fn numbers() -> Stream<u64>;
}

fn main() {}
