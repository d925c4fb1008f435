//! Generates the Rust view of `include/irisvip.h` (the callout ABI) with bindgen, and
//! keeps the cdylib mapped for the life of the host process.

use std::env;
use std::path::PathBuf;

fn main() {
    let header = "include/irisvip.h";
    println!("cargo:rerun-if-changed={header}");

    let bindings = bindgen::Builder::default()
        .header(header)
        // Types only: the functions are defined in Rust, the header just declares them for C.
        .allowlist_type("zfestr|irisvip_.*")
        .allowlist_var("IRISVIP_.*")
        .layout_tests(true)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on {header} (is libclang-dev installed?): {e}"));

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("abi.rs");
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));

    // IRIS unloads callout libraries ($ZF(-4,2), replacement); Rust's thread-local destructors
    // and the leaked runtime of an earlier call must never be unmapped under a live process.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    // The symbol table is half the file (13 of 26 MiB) and serves only debuggers; the dynamic
    // symbols IRIS looks up (GetZFTable, the entries) stay. Link-time, so no dependency rebuilds.
    println!("cargo:rerun-if-env-changed=IRISVIP_KEEP_SYMBOLS");
    if env::var_os("IRISVIP_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--strip-all");
    }
}
