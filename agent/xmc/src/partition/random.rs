//! The baseline: labels shuffled and dealt into `k` groups of sizes that differ by at most one.

use sweep_spec::sample::SplitMix64;

pub fn split(labels: &[u32], k: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = SplitMix64::new(seed);
    let mut shuffled = labels.to_vec();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    even_chunks(&shuffled, k)
}

/// `items` cut in order into `k` runs whose sizes differ by at most one.
pub fn even_chunks(items: &[u32], k: usize) -> Vec<Vec<u32>> {
    let (base, extra) = (items.len() / k, items.len() % k);
    let mut out = Vec::with_capacity(k);
    let mut at = 0;
    for g in 0..k {
        let size = base + usize::from(g < extra);
        out.push(items[at..at + size].to_vec());
        at += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::assert_partition;

    #[test]
    fn even_sizes_every_label_once() {
        let labels: Vec<u32> = (100..203).collect();
        let groups = split(&labels, 4, 9);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), vec![26, 26, 26, 25]);
        assert_partition(&labels, &groups);
        assert_ne!(groups[0], (100..126).collect::<Vec<u32>>(), "shuffled");
        assert_eq!(split(&labels, 4, 9), groups, "seeded");
    }
}
