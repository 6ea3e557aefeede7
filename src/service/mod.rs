//! What users build on: a [`Server`] that runs their [`Service`], and a
//! [`Client`].

mod client;
mod handler;
mod line_output;
mod print_service;
mod server;

pub use client::{Client, ClientConfig, ClientError, Incoming, ProtocolVersion, Pushed};
pub use handler::{Handler, PeerInfo, Service};
pub use line_output::{LineOutput, LineOutputWriter, format_message_line, spawn_line_output};
pub use print_service::{PrintHandler, PrintService};
pub use server::{
    PushError, Pusher, Responder, Server, ServerConfig, ServerError, terminate_signal,
};
