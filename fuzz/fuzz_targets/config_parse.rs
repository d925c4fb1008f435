//! Arbitrary bytes as the config string: `config::parse` never panics, refuses with a
//! `config`/`validation` error and a bounded message, and whatever it accepts is in range.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    irisvip_fuzz::check_config(data);
});
