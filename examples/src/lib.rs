//! The wavecast examples are the binaries in `src/bin/`; this library only
//! compiles the README's code blocks as doctests, so the code a newcomer
//! copies first is known to build.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
