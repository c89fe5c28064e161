//! What survives restarts: the persisted types with their version ([`schema`]) and the
//! locked, atomically written file behind them ([`store`]).
//!
//! Everything else the daemon knows (desired capacities, IPs, records, services) is read
//! from AWS again, so a stale state file cannot make it act on a stale picture.

pub mod parts;
pub mod schema;
pub mod store;

pub use schema::*;
pub use store::{Pending, StateError, StateStore, Table};
