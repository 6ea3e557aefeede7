use rust_tcp::typed::Stream;

#[rust_tcp::service]
pub trait Sum {
    async fn sum(numbers: Stream<u64>) -> u64;
}

fn main() {}
