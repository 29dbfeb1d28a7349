#![no_main]
//! `cargo fuzz run body`: see `tests/fuzz/targets.rs`.

#[path = "../../tests/fuzz/targets.rs"]
#[allow(dead_code)]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = targets::body(data);
});
