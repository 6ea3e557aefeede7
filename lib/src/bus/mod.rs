//! A message bus between servers, so that several server processes behind
//! a load balancer act as one: a broadcast published by one server reaches
//! the clients of every server. The bus is NATS (`async-nats`, behind the
//! default `nats` cargo feature); each server delivers what arrives to its
//! own clients through their usual bounded queues, so the slow-consumer
//! rule is the same for local and relayed messages.
//!
//! A [`Service`](crate::Service) holds a [`NatsBus`] handle like any other
//! shared state: [`NatsBus::publish`] waits only while NATS is connected
//! and busy (a message that cannot be queued while NATS is away is dropped
//! and counted, so a missing NATS never holds a client up), and
//! [`NatsBus::subscribe`] yields what other servers publish (never this
//! server's own messages: its clients had them already).

mod nats;

pub use nats::{BusError, BusStats, NatsBus, Subscription};
