#![no_main]
//! See `checks::inflate` for the properties checked.

use libfuzzer_sys::fuzz_target;
use wavecast_fuzz::{checks, heap};

fuzz_target!(|data: &[u8]| {
    checks::run("inflate", data, Some(&heap()));
});
