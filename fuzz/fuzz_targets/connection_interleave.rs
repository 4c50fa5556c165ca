#![no_main]
//! See `checks::connection_interleave` for the properties checked.

use libfuzzer_sys::fuzz_target;
use wavecast_fuzz::{checks, heap};

fuzz_target!(|data: &[u8]| {
    checks::run("connection_interleave", data, Some(&heap()));
});
