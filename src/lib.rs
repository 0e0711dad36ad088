//! p2pchat: a peer-to-peer terminal chat with a small registration server,
//! built on the Rust standard library alone.
//!
//! The layout mirrors the design:
//! - [`protocol`]: every line on the wire as a typed value (no I/O), one
//!   file per grammar;
//! - [`token`]: call tokens, their wire form and their random source;
//! - [`connection`]: bounded, deadline-aware line reading, and the
//!   [`connection::Outbox`] the server writes through;
//! - [`registry`]: the server's table of who is online and in which call;
//! - [`server`]: the registration server (accept loop, one thread a client);
//! - [`relay`]: the server joining two peers that cannot reach each other;
//! - [`chat`]: the peer (login, p2pserver, p2pclient, ui threads and the main
//!   loop that owns the state);
//! - [`cli`]: argument parsing for both binaries;
//! - [`downloads`]: where a received file goes, under a safe name;
//! - [`text`] and [`unicode`]: the one gate for untrusted text, and Unicode
//!   from its own data (clusters, widths, normalisation, scripts).
//!
//! The server's modules depend one way only: protocol ← connection ←
//! registry ← relay ← server.

pub mod chat;
pub mod cli;
pub mod connection;
pub mod downloads;
pub mod lines;
pub mod log;
pub mod protocol;
pub mod registry;
pub mod relay;
pub mod server;
pub mod text;
pub mod token;
pub mod unicode;
