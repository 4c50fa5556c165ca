#![no_main]
//! See `checks::stream` for the properties checked.

use libfuzzer_sys::fuzz_target;
use wavecast_fuzz::{checks, heap};

fuzz_target!(|data: &[u8]| {
    checks::run("stream", data, Some(&heap()));
});
