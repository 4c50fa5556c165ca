#![no_main]
//! See `checks::connection_server` for the properties checked.

use libfuzzer_sys::fuzz_target;
use wavecast_fuzz::{checks, heap};

fuzz_target!(|data: &[u8]| {
    checks::run("connection_server", data, Some(&heap()));
});
