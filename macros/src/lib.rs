//! `#[rust_tcp::service]`: one trait of `async fn`s becomes a typed
//! protocol, a client with a method per call, and the server's dispatch
//! to a method per call. Use it through `rust_tcp::service` (the `typed`
//! feature), which documents what it generates; this crate is only the
//! macro.
//!
//! The work is in two steps, as in most derive crates: [`model`] reads the
//! trait into a description of the service, refusing what it cannot serve
//! with an error that says what to change, and [`expand`] writes the code
//! from that description.

mod expand;
mod model;

use proc_macro::TokenStream;

/// Turns a trait of `async fn`s into a protocol, its client and its
/// server's dispatch. See `rust_tcp::service` for the whole story.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    let parsed = model::Service::parse(args.into(), input.into());
    match parsed {
        Ok(service) => expand::expand(&service).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
