//! The C boundary IRIS calls: the function table, the entries, the callback table (reply
//! capacity, IRIS's signal protocol), the panic guard and the SIGPIPE hold. No logic lives
//! here; every entry hands the config bytes and an interrupt check to `ops::execute_with` and
//! writes the result into the caller's buffer. All `unsafe` of the crate's ABI is here.

pub mod abi;
mod callbacks;
mod entry;
mod panic;
mod sigpipe;
mod table;
