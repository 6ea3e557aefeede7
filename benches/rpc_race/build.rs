//! tonic's service code from proto/echo.proto (needs `protoc`; scripts/bench.sh
//! installs protobuf-compiler).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::compile_protos("proto/echo.proto")?;
    Ok(())
}
