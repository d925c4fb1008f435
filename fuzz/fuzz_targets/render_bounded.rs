//! An arbitrary result and an arbitrary reply capacity: `report::render_bounded` writes at most
//! capacity - 1 bytes (the NUL takes the last), valid JSON when `{}` fits, nothing otherwise.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    irisvip_fuzz::check_render_bytes(data);
});
