#![no_main]
//! See `checks::connection_large` for the properties checked.

use libfuzzer_sys::fuzz_target;
use wavecast_fuzz::{checks, heap};

fuzz_target!(|data: &[u8]| {
    checks::run("connection_large", data, Some(&heap()));
});
