//! What users build on: a [`Server`] that runs their [`Service`], and a
//! [`Client`].

mod accept_backoff;
mod client;
mod client_reader;
mod handler;
mod line_output;
mod outbound;
mod print_service;
mod server;
mod shutdown;
mod v1_connection;
mod v2_connection;

pub use client::{Client, ClientConfig, ClientError, Incoming, ProtocolVersion, Pushed};
pub use handler::{Handler, PeerInfo, Service};
pub use line_output::{LineOutput, LineOutputWriter, format_message_line, spawn_line_output};
pub use outbound::{PushError, Pusher, Responder};
pub use print_service::{PrintHandler, PrintService};
pub use server::{Server, ServerConfig, ServerError};
pub use shutdown::terminate_signal;
