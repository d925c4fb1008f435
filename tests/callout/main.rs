//! The library through the C ABI, loaded by the `zfhost` callout host the way IRIS loads it,
//! against moto's EC2 server and IMDSv2 stand-ins. One module per topic.

#[path = "../common/mod.rs"]
mod common;

mod abi;
mod bad_input;
mod check;
mod consistency;
mod contract;
mod credentials;
mod dns;
mod ec2_model;
mod eip;
mod faults;
mod fuzz_abi;
mod ipv6;
mod private_ip;
mod process;
mod races;
mod role;
mod scenarios;
mod selection;
mod signals;
mod tls;
