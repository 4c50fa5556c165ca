//! Per-connection randomness for mask keys (RFC 6455 §5.3) and handshake keys.

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::SeedSource;

/// A connection's own random generator, seeded from a [`SeedSource`].
#[derive(Clone, Debug)]
pub struct Rng(ChaCha12Rng);

impl Rng {
    /// A generator seeded as `source` says: OS entropy, or a fixed seed for tests.
    pub fn new(source: SeedSource) -> Rng {
        match source {
            SeedSource::Fixed(seed) => Rng(ChaCha12Rng::seed_from_u64(seed)),
            SeedSource::Os => {
                let mut seed = [0u8; 32];
                // Entropy failure at this point means the OS cannot give
                // randomness at all; predictable masks would break §5.3.
                getrandom::fill(&mut seed).expect("operating system entropy is available");
                Rng(ChaCha12Rng::from_seed(seed))
            }
        }
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }

    /// A fresh masking key.
    pub fn mask_key(&mut self) -> [u8; 4] {
        self.0.next_u32().to_ne_bytes()
    }

    /// A uniformly random `u64` (used for backoff jitter).
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}
