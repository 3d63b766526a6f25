//! Long-tailed training splits cut from balanced ones with the exponential profile of CIFAR-LT
//! (Cao et al. 2019): class i keeps n_i = floor(n_max * rho^(-i / (C - 1))) images, the first ones
//! in stored order, so class 0 is the head and class C - 1 has n_max / rho. Test splits stay as
//! they are.

use super::raw::RawSet;

/// The class sizes of the profile: n_max, ..., n_max / ratio (floored), for `ratio` >= 1.
pub fn exponential_counts(n_max: usize, classes: usize, ratio: f64) -> Vec<usize> {
    (0..classes)
        .map(|i| {
            let exponent = if classes > 1 { i as f64 / (classes - 1) as f64 } else { 0.0 };
            (n_max as f64 * ratio.powf(-exponent)).floor() as usize
        })
        .collect()
}

/// The images of each class in stored order, cut to the profile. n_max is the largest class of
/// `set`; a class smaller than its quota keeps all its images.
pub(crate) fn take_long_tail(set: RawSet, ratio: f64) -> RawSet {
    let classes = set.classes as usize;
    let mut sizes = vec![0usize; classes];
    set.labels.iter().for_each(|&l| sizes[l as usize] += 1);
    let quota = exponential_counts(sizes.iter().copied().max().unwrap_or(0), classes, ratio);
    let mut taken = vec![0usize; classes];
    let keep: Vec<usize> = (0..set.len())
        .filter(|&i| {
            let c = set.labels[i] as usize;
            let kept = taken[c] < quota[c];
            taken[c] += kept as usize;
            kept
        })
        .collect();
    let mut pixels = Vec::with_capacity(keep.len() * set.image_bytes());
    keep.iter().for_each(|&i| pixels.extend_from_slice(set.image(i)));
    RawSet { pixels, labels: keep.iter().map(|&i| set.labels[i]).collect(), ..set }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_lt_profiles_match_the_published_class_sizes() {
        // CIFAR-10-LT rho = 100 as the LDAM-DRW code builds it: 12,406 images.
        let counts = exponential_counts(5000, 10, 100.0);
        assert_eq!(counts, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]);
        assert_eq!(counts.iter().sum::<usize>(), 12406);
        // rho = 10 and 50 end at n_max / rho.
        assert_eq!(*exponential_counts(5000, 10, 10.0).last().unwrap(), 500);
        assert_eq!(*exponential_counts(5000, 10, 50.0).last().unwrap(), 100);
        // CIFAR-100-LT rho = 100: 500 down to 5, 10,847 images.
        let hundred = exponential_counts(500, 100, 100.0);
        assert_eq!((hundred[0], hundred[99]), (500, 5));
        assert_eq!(hundred.iter().sum::<usize>(), 10847);
        assert!(hundred.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(exponential_counts(500, 10, 1.0), vec![500; 10]);
    }

    #[test]
    fn the_cut_keeps_the_first_images_of_each_class() {
        // 3 classes x 8 one-byte images, interleaved; the byte is the image's index.
        let labels: Vec<i64> = (0..24).map(|i| i % 3).collect();
        let set = RawSet { pixels: (0..24).collect(), labels, channels: 1, height: 1, width: 1, classes: 3 };
        let cut = take_long_tail(set, 4.0);
        // 8, 8 * 4^-0.5 = 4, 8 / 4 = 2.
        let count = |c| cut.labels.iter().filter(|&&l| l == c).count();
        assert_eq!((count(0), count(1), count(2)), (8, 4, 2));
        assert_eq!(cut.pixels, [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 15, 18, 21]);
        assert!(cut.pixels.iter().zip(&cut.labels).all(|(&p, &l)| p as i64 % 3 == l));
    }
}
