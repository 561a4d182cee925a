//! The order examples are seen in: each epoch a seeded shuffle, then length-bucketed batches
//! (examples of similar length together, so little padding), then the batches shuffled. The
//! order is a pure function of (seed, epoch), so a resumed run sees the same batches.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::Example;

/// Examples sorted by length within windows of this many batches.
const BUCKET_BATCHES: usize = 16;

/// The batches (indices into `examples`) of one epoch.
pub fn epoch_batches(examples: &[Example], batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(epoch as u64));
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.shuffle(&mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks_mut(batch_size * BUCKET_BATCHES) {
        window.sort_by_key(|&i| examples[i].tokens.len());
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Micro-batches in training order across epochs: `at(n)` is the n-th micro-batch of the run.
#[derive(Debug)]
pub struct Schedule<'a> {
    examples: &'a [Example],
    batch_size: usize,
    seed: u64,
    per_epoch: usize,
    cached: Option<(usize, Vec<Vec<usize>>)>,
}

impl<'a> Schedule<'a> {
    pub fn new(examples: &'a [Example], batch_size: usize, seed: u64) -> Self {
        let per_epoch = examples.len().div_ceil(batch_size);
        Self {
            examples,
            batch_size,
            seed,
            per_epoch,
            cached: None,
        }
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.per_epoch
    }

    /// The `n`-th micro-batch and its epoch.
    pub fn at(&mut self, n: usize) -> (usize, Vec<usize>) {
        let epoch = n / self.per_epoch;
        if self.cached.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.cached = Some((epoch, epoch_batches(self.examples, self.batch_size, self.seed, epoch)));
        }
        let batches = &self.cached.as_ref().expect("cached above").1;
        (epoch, batches[n % self.per_epoch].clone())
    }
}
