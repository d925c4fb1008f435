//! irisvip: an InterSystems IRIS callout library (`$ZF(-4)`/`$ZF(-5)`) that moves a mirror's
//! VIP on AWS: by pointing the VIP's /32 route in the VPC route tables at this member's network
//! interface (members in different availability zones), or by moving a secondary private IP or
//! an Elastic IP to it.
//!
//! Layers, each readable alone:
//! - `ffi`: the C boundary (function table, entries, callback table, panic guard, SIGPIPE);
//! - `ops`: the entries' frame (config, deadline, interrupts, identity); `check`: the
//!   preflight's common part;
//! - `kinds`: one module per kind of address (route, private IP, Elastic IP), each
//!   discover → plan → apply → read back → report, built from
//!   - `config` (the config string), `net` (IP prefixes), `plan` (pure decisions),
//!     `report` (the result JSON), `local` (addresses and devices on this host);
//! - `aws`: IMDS, EC2 (with the library's own retries) and the per-process session;
//!   `runtime` (current_thread runtime, fork aware), `dns` (an asynchronous resolver on it)
//!   and `interrupt` (IRIS's `sigrtchk` while a call waits) keep every call on the caller's
//!   thread and within its deadline.

pub mod aws;
pub mod check;
pub mod config;
mod dns;
pub mod error;
mod ffi;
mod interrupt;
pub mod kinds;
pub mod local;
pub mod net;
pub mod ops;
pub mod plan;
pub mod report;
mod runtime;

pub use error::{Error, ErrorKind};
pub use ops::execute;
pub use report::{Op, Report};
