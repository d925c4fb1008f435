//! The C boundary IRIS calls: the function table, the entries, the callback table and the
//! panic guard. No logic lives here; every entry hands the config bytes to `ops::execute`
//! and writes the result into the caller's buffer. All `unsafe` of the crate's ABI is here.

pub mod abi;
mod callbacks;
mod entry;
mod panic;
mod table;
