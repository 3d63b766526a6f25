//! Parameter importance: which sweep parameters explain the variation of a metric across trials.
//!
//! A researcher looking at a sweep wants to know which knobs mattered. The answer here is the
//! random-forest importance of each parameter: a forest of regression trees learns the metric from
//! the parameters, every split credits its parameter with the squared error it removes (mean
//! decrease in impurity), and the credits are normalised per tree and averaged, so the shares sum
//! to 1 and read as "the share of the metric's variation this parameter explains".
//!
//! The forest: [`TREES`] trees, each grown on a bootstrap sample of the trials, to depth
//! [`MAX_DEPTH`], with at least [`MIN_LEAF`] distinct trials per leaf. Every node considers every
//! parameter (sweeps have few of them, and it keeps the ranking stable; the trees differ through
//! their samples). Numeric parameters split between any two neighbouring distinct values, using
//! orders sorted once per tree and kept sorted within each node, so growing a tree costs about
//! parameters x trials x depth. Categorical parameters split by ordering their categories by mean
//! metric, which finds the best two-way grouping for squared error. Trials without a value for the
//! split parameter go to whichever side removes more error, and "has a value / has none" is itself
//! a candidate split, so a conditional parameter (momentum, only set for SGD) gets its credit.
//!
//! Limits a reader of the numbers should keep in mind:
//! - The importance is explanatory, not causal, and measured on the trials themselves: a parameter
//!   with no effect still collects a few percent from splits that fit noise, more so with many
//!   distinct values and few trials.
//! - Correlated parameters share or mask each other's credit, and an interaction is credited to the
//!   parameters involved without being reported as an interaction.
//! - Shifting or rescaling the metric changes nothing, but a non-linear transform can: a loss and
//!   its logarithm may rank the parameters differently.
//! - At most [`MAX_ROWS`] trials are used, a seeded sample when there are more.

/// Fewer usable trials than this give no importance at all: a forest on a handful of trials
/// credits noise as readily as signal.
pub const MIN_TRIALS: usize = 8;
/// The most trials one answer looks at; larger sweeps are sampled, so the cost stays flat.
pub const MAX_ROWS: usize = 2000;
/// Trees in the forest: enough for the shares to settle to about a percent.
pub const TREES: usize = 32;
/// Depth of each tree: deep enough for interactions, shallow enough to stay fast.
pub const MAX_DEPTH: usize = 10;
/// Distinct trials a leaf keeps at least, so that no split isolates a single noisy trial.
pub const MIN_LEAF: usize = 3;

/// One parameter's values over the trials, in trial order.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// Numbers (a NaN: the trial has no value for it).
    Numeric(Vec<f64>),
    /// Category codes 0..n (strings and booleans, encoded by the caller); u32::MAX: no value.
    Categorical(Vec<u32>),
}

/// The share of the metric's variance each feature explains, in the order given, summing to 1
/// (all 0 when the target does not vary or there are fewer than `MIN_TRIALS` usable rows).
/// Rows whose target is not finite are left out. At most `MAX_ROWS` rows are used (a seeded
/// sample when there are more), so the answer costs about the same at 100,000 trials.
///
/// The answer is the same for the same inputs and `seed`. A feature shorter than `target` has no
/// value for the trials past its end; values past the end of `target` are ignored. All shares are
/// also 0 when no parameter can split the trials (every parameter constant).
#[must_use]
pub fn importance(features: &[Feature], target: &[f64], seed: u64) -> Vec<f64> {
    let mut shares = vec![0.0; features.len()];
    let mut rng = SplitMix64(seed);
    let rows = usable_rows(target, &mut rng);
    if features.is_empty() || rows.len() < MIN_TRIALS {
        return shares;
    }
    let Some(y) = scaled(rows.iter().map(|&r| target[r])) else { return shares };
    let columns: Vec<Column> = features.iter().map(|f| Column::new(f, &rows)).collect();
    let mut forest = Forest::new(&columns, &y);
    for _ in 0..TREES {
        let gains = forest.grow_tree(&mut rng);
        let total: f64 = gains.iter().sum();
        if total > 0.0 {
            for (share, gain) in shares.iter_mut().zip(gains) {
                *share += gain / total;
            }
        }
    }
    let total: f64 = shares.iter().sum();
    if total > 0.0 {
        for share in &mut shares {
            *share /= total;
        }
    }
    shares
}

/// The trials with a finite target, in trial order; a seeded sample of `MAX_ROWS` of them when
/// there are more.
fn usable_rows(target: &[f64], rng: &mut SplitMix64) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..target.len()).filter(|&r| target[r].is_finite()).collect();
    if rows.len() > MAX_ROWS {
        // A partial Fisher-Yates shuffle draws the sample without replacement.
        for i in 0..MAX_ROWS {
            let j = i + rng.below(rows.len() - i);
            rows.swap(i, j);
        }
        rows.truncate(MAX_ROWS);
        rows.sort_unstable();
    }
    rows
}

/// The targets mapped onto [-1, 1]: shares do not depend on the metric's offset or scale, and
/// bounded values keep the squared sums of the split search finite whatever the metric's
/// magnitude. `None` when they do not vary.
fn scaled(targets: impl Iterator<Item = f64> + Clone) -> Option<Vec<f64>> {
    let (min, max) = targets.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    // Halved before subtracting, so that no finite metric overflows.
    let (middle, half_range) = (min * 0.5 + max * 0.5, max * 0.5 - min * 0.5);
    (half_range > 0.0).then(|| targets.map(|v| (v - middle) / half_range).collect())
}

/// Category index of a trial without a value; also what `Feature::Categorical` uses.
const MISSING: u32 = u32::MAX;

/// One parameter over the used rows (row i is the i-th usable trial).
struct Column {
    values: Values,
    /// Rows by ascending value, rows without a value last; ties keep row order.
    sorted: Vec<u32>,
    /// Whether every row has a value.
    complete: bool,
}

enum Values {
    /// By row; NaN: no value.
    Numeric(Vec<f64>),
    /// Dense category index by row, 0..categories; `MISSING`: no value.
    Categorical { codes: Vec<u32>, categories: usize },
}

impl Column {
    fn new(feature: &Feature, rows: &[usize]) -> Column {
        let mut sorted: Vec<u32> = (0..rows.len() as u32).collect();
        let values = match feature {
            Feature::Numeric(all) => {
                let values: Vec<f64> = rows.iter().map(|&r| all.get(r).copied().unwrap_or(f64::NAN)).collect();
                sorted.sort_by(|&a, &b| {
                    let (a, b) = (values[a as usize], values[b as usize]);
                    match (a.is_nan(), b.is_nan()) {
                        (false, false) => a.total_cmp(&b),
                        (nan_a, nan_b) => nan_a.cmp(&nan_b),
                    }
                });
                Values::Numeric(values)
            }
            Feature::Categorical(all) => {
                let raw: Vec<u32> = rows.iter().map(|&r| all.get(r).copied().unwrap_or(MISSING)).collect();
                let mut seen: Vec<u32> = raw.iter().copied().filter(|&c| c != MISSING).collect();
                seen.sort_unstable();
                seen.dedup();
                let codes: Vec<u32> = raw
                    .iter()
                    .map(|&c| if c == MISSING { MISSING } else { seen.binary_search(&c).unwrap() as u32 })
                    .collect();
                sorted.sort_by_key(|&r| codes[r as usize]);
                Values::Categorical { codes, categories: seen.len() }
            }
        };
        let mut column = Column { values, sorted, complete: false };
        column.complete = (0..rows.len() as u32).all(|r| column.has_value(r));
        column
    }

    fn has_value(&self, row: u32) -> bool {
        match &self.values {
            Values::Numeric(values) => !values[row as usize].is_nan(),
            Values::Categorical { codes, .. } => codes[row as usize] != MISSING,
        }
    }
}

/// A node: positions `start..end` of every per-tree order hold the same rows.
#[derive(Clone, Copy)]
struct Node {
    start: usize,
    end: usize,
    depth: usize,
}

/// Weight and target sums of a set of rows, the target taken relative to the node's mean so
/// that the sums stay well conditioned deep in a tree.
#[derive(Clone, Copy, Default)]
struct Sums {
    weight: f64,
    target: f64,
    rows: usize,
}

impl Sums {
    fn plus(self, other: Sums) -> Sums {
        Sums { weight: self.weight + other.weight, target: self.target + other.target, rows: self.rows + other.rows }
    }

    fn minus(self, other: Sums) -> Sums {
        Sums { weight: self.weight - other.weight, target: self.target - other.target, rows: self.rows - other.rows }
    }

    /// `S^2 / W`: see [`Candidates`].
    fn score(self) -> f64 {
        self.target * self.target / self.weight
    }
}

/// The current tree's bootstrap sample, seen from one node.
#[derive(Clone, Copy)]
struct Sample<'a> {
    /// Times each row was drawn.
    weight: &'a [f64],
    y: &'a [f64],
    /// The node's mean target, which the sums are taken relative to.
    mean: f64,
}

impl Sample<'_> {
    fn sums(&self, rows: &[u32]) -> Sums {
        let mut sums = Sums::default();
        for &r in rows {
            self.add(&mut sums, r);
        }
        sums
    }

    fn add(&self, sums: &mut Sums, row: u32) {
        let weight = self.weight[row as usize];
        sums.weight += weight;
        sums.target += weight * (self.y[row as usize] - self.mean);
        sums.rows += 1;
    }
}

/// How the rows of a node divide.
enum Rule {
    /// The first `left` rows with a value, in the feature's sorted order, go left.
    Prefix { left: usize },
    /// Rows in these categories go left.
    Categories(Vec<u32>),
}

struct Split {
    feature: usize,
    gain: f64,
    rule: Rule,
    /// Where the rows without a value for the feature go.
    missing_left: bool,
}

/// The forest's data and the buffers it reuses from tree to tree.
struct Forest<'a> {
    columns: &'a [Column],
    y: &'a [f64],
    /// Times each row was drawn into the current tree's bootstrap sample.
    weight: Vec<f64>,
    /// Per feature: the drawn rows, node by node, each node's rows sorted by the feature.
    orders: Vec<Vec<u32>>,
    /// Error removed by each feature's splits in the current tree.
    gains: Vec<f64>,
    goes_left: Vec<bool>,
    /// Room for a node's right-hand rows while partitioning.
    scratch: Vec<u32>,
    /// Per category, for the categorical split search; left zeroed between searches.
    category_sums: Vec<Sums>,
    category_left: Vec<bool>,
}

impl<'a> Forest<'a> {
    fn new(columns: &'a [Column], y: &'a [f64]) -> Forest<'a> {
        let most_categories = columns
            .iter()
            .map(|c| match c.values {
                Values::Categorical { categories, .. } => categories,
                Values::Numeric(_) => 0,
            })
            .max()
            .unwrap_or(0);
        Forest {
            columns,
            y,
            weight: vec![0.0; y.len()],
            orders: vec![Vec::with_capacity(y.len()); columns.len()],
            gains: vec![0.0; columns.len()],
            goes_left: vec![false; y.len()],
            scratch: vec![0; y.len()],
            category_sums: vec![Sums::default(); most_categories],
            category_left: vec![false; most_categories],
        }
    }

    /// Grows one tree on a fresh bootstrap sample; returns the error each feature's splits removed.
    fn grow_tree(&mut self, rng: &mut SplitMix64) -> &[f64] {
        let n = self.y.len();
        self.weight.fill(0.0);
        for _ in 0..n {
            self.weight[rng.below(n)] += 1.0;
        }
        for (order, column) in self.orders.iter_mut().zip(self.columns) {
            order.clear();
            order.extend(column.sorted.iter().filter(|&&r| self.weight[r as usize] > 0.0));
        }
        self.gains.fill(0.0);

        let root = Node { start: 0, end: self.orders[0].len(), depth: 0 };
        // Gains below this are rounding, not signal; a node whose trials agree stops here.
        let tolerance = self.error(root) * 1e-12;
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if node.depth >= MAX_DEPTH || node.end - node.start < 2 * MIN_LEAF {
                continue;
            }
            let Some(split) = self.best_split(node) else { continue };
            if split.gain <= tolerance {
                continue;
            }
            self.gains[split.feature] += split.gain;
            let middle = self.partition(node, &split);
            stack.push(Node { start: node.start, end: middle, depth: node.depth + 1 });
            stack.push(Node { start: middle, end: node.end, depth: node.depth + 1 });
        }
        &self.gains
    }

    /// The node's mean target over the bootstrap sample.
    fn mean(&self, node: Node) -> f64 {
        let (mut weight, mut sum) = (0.0, 0.0);
        for &r in &self.orders[0][node.start..node.end] {
            weight += self.weight[r as usize];
            sum += self.weight[r as usize] * self.y[r as usize];
        }
        sum / weight
    }

    /// Weighted squared error of the node around its mean.
    fn error(&self, node: Node) -> f64 {
        let mean = self.mean(node);
        self.orders[0][node.start..node.end]
            .iter()
            .map(|&r| self.weight[r as usize] * (self.y[r as usize] - mean).powi(2))
            .sum()
    }

    fn best_split(&mut self, node: Node) -> Option<Split> {
        let sample = Sample { weight: &self.weight, y: self.y, mean: self.mean(node) };
        let total = sample.sums(&self.orders[0][node.start..node.end]);
        let mut best: Option<Split> = None;
        for (feature, column) in self.columns.iter().enumerate() {
            let rows = &self.orders[feature][node.start..node.end];
            // Rows without a value sit at the end of every node's slice.
            let present = if column.complete { rows.len() } else { rows.partition_point(|&r| column.has_value(r)) };
            let candidates = Candidates::new(total, sample.sums(&rows[present..]));
            let found =
                match &column.values {
                    Values::Numeric(values) => {
                        best_numeric(sample, values, &rows[..present], candidates).map(|(gain, left, missing_left)| {
                            Split { feature, gain, rule: Rule::Prefix { left }, missing_left }
                        })
                    }
                    Values::Categorical { codes, .. } => {
                        best_categorical(sample, codes, &rows[..present], &mut self.category_sums, candidates).map(
                            |(gain, categories, missing_left)| Split {
                                feature,
                                gain,
                                rule: Rule::Categories(categories),
                                missing_left,
                            },
                        )
                    }
                };
            if let Some(split) = found {
                if best.as_ref().is_none_or(|b| split.gain > b.gain) {
                    best = Some(split);
                }
            }
        }
        best
    }

    /// Reorders every feature's slice of the node so that the left child's rows come first,
    /// keeping each side sorted; returns where the right child starts.
    fn partition(&mut self, node: Node, split: &Split) -> usize {
        let column = &self.columns[split.feature];
        let rows = &self.orders[split.feature][node.start..node.end];
        match &split.rule {
            Rule::Prefix { left } => {
                for (i, &r) in rows.iter().enumerate() {
                    self.goes_left[r as usize] = if column.has_value(r) { i < *left } else { split.missing_left };
                }
            }
            Rule::Categories(categories) => {
                let Values::Categorical { codes, .. } = &column.values else { unreachable!("categories of a number") };
                for &c in categories {
                    self.category_left[c as usize] = true;
                }
                for &r in rows {
                    let code = codes[r as usize];
                    self.goes_left[r as usize] =
                        if code == MISSING { split.missing_left } else { self.category_left[code as usize] };
                }
                for &c in categories {
                    self.category_left[c as usize] = false;
                }
            }
        }
        let goes_left = &self.goes_left;
        let mut left = 0;
        for order in &mut self.orders {
            let rows = &mut order[node.start..node.end];
            let right = &mut self.scratch[..rows.len()];
            // Branch-free: each row is written to both sides and kept by one. Writing `rows[left]`
            // in place is safe because `left <= i`.
            let mut right_len = 0;
            left = 0;
            for i in 0..rows.len() {
                let r = rows[i];
                let goes = goes_left[r as usize];
                rows[left] = r;
                right[right_len] = r;
                left += usize::from(goes);
                right_len += usize::from(!goes);
            }
            rows[left..].copy_from_slice(&right[..right_len]);
        }
        node.start + left
    }
}

/// The best boundary between neighbouring distinct values of a numeric feature, `present` being
/// the node's rows with a value in ascending order: (gain, rows going left, whether the rows
/// without a value go left).
fn best_numeric(sample: Sample, values: &[f64], present: &[u32], mut c: Candidates) -> Option<(f64, usize, bool)> {
    let mut left = Sums::default();
    let mut previous = 0.0;
    for (i, &r) in present.iter().enumerate() {
        let value = values[r as usize];
        // A candidate boundary: between two distinct values.
        if i > 0 && value != previous {
            c.consider(left, i, true);
        }
        sample.add(&mut left, r);
        previous = value;
    }
    // Past the last value, the split is "has a value / has none".
    c.consider(left, present.len(), false);
    c.best()
}

/// The best grouping of a categorical feature's categories, ordered by mean target: (gain,
/// categories going left, whether the rows without a value go left). `sums` is zeroed scratch,
/// one entry per category, and is left zeroed.
fn best_categorical(
    sample: Sample,
    codes: &[u32],
    present: &[u32],
    sums: &mut [Sums],
    mut c: Candidates,
) -> Option<(f64, Vec<u32>, bool)> {
    let mut seen = Vec::new();
    for &r in present {
        let code = codes[r as usize];
        if sums[code as usize].rows == 0 {
            seen.push(code);
        }
        sample.add(&mut sums[code as usize], r);
    }
    let category_mean = |c: u32| sums[c as usize].target / sums[c as usize].weight;
    seen.sort_by(|&a, &b| category_mean(a).total_cmp(&category_mean(b)).then(a.cmp(&b)));

    let mut left = Sums::default();
    for (i, &code) in seen.iter().enumerate() {
        left = left.plus(sums[code as usize]);
        // Past the last category, the split is "has a value / has none".
        c.consider(left, i + 1, i + 1 < seen.len());
    }
    for &code in &seen {
        sums[code as usize] = Sums::default();
    }
    c.best().map(|(gain, count, missing_left)| (gain, seen[..count].to_vec(), missing_left))
}

/// Scores the candidate splits of one feature at one node, remembering the best so far.
///
/// With S the target sum and W the weight of a set of rows, the squared error a split removes is
/// `S_l^2 / W_l + S_r^2 / W_r - S^2 / W`, so a scan that carries the left side's sums scores every
/// boundary in constant time.
struct Candidates {
    total: Sums,
    /// The node's rows without a value for the feature.
    missing: Sums,
    /// The node's own score, `S^2 / W`.
    parent: f64,
    best_gain: f64,
    /// Where the best split so far puts its boundary, and whether the rows without a value go left.
    best_at: Option<(usize, bool)>,
}

impl Candidates {
    fn new(total: Sums, missing: Sums) -> Candidates {
        Candidates { total, missing, parent: total.score(), best_gain: 0.0, best_at: None }
    }

    /// Scores `left` (rows with a value, up to the boundary `at`) against the rest, with the rows
    /// without a value on the better side (always on the right unless `missing_may_go_left`).
    fn consider(&mut self, left: Sums, at: usize, missing_may_go_left: bool) {
        self.score(left, at, false);
        if missing_may_go_left && self.missing.rows > 0 {
            self.score(left.plus(self.missing), at, true);
        }
    }

    /// Both sides must keep `MIN_LEAF` rows.
    fn score(&mut self, left: Sums, at: usize, missing_left: bool) {
        let right = self.total.minus(left);
        if left.rows < MIN_LEAF || right.rows < MIN_LEAF {
            return;
        }
        let gain = left.score() + right.score() - self.parent;
        if gain > self.best_gain {
            self.best_gain = gain;
            self.best_at = Some((at, missing_left));
        }
    }

    /// The best split that removes any error: (gain, boundary, whether the rows without a value
    /// go left).
    fn best(&self) -> Option<(f64, usize, bool)> {
        self.best_at.map(|(at, missing_left)| (self.best_gain, at, missing_left))
    }
}

/// A small, fast generator (Steele, Lea and Flood's `SplitMix64`), so that an answer depends on
/// the seed alone.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-50 for any n here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform in [0, 1).
    fn uniform(rng: &mut SplitMix64) -> f64 {
        (rng.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn numbers(rng: &mut SplitMix64, n: usize) -> Vec<f64> {
        (0..n).map(|_| uniform(rng)).collect()
    }

    fn assert_sums_to_one(shares: &[f64]) {
        let total: f64 = shares.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "shares {shares:?} sum to {total}");
        assert!(shares.iter().all(|s| s.is_finite() && *s >= 0.0), "shares {shares:?}");
    }

    /// target = 10 x0 + x1 + noise, x2 irrelevant.
    fn linear(n: usize, seed: u64) -> (Vec<Feature>, Vec<f64>) {
        let mut rng = SplitMix64(seed);
        let x: Vec<Vec<f64>> = (0..3).map(|_| numbers(&mut rng, n)).collect();
        let target = (0..n).map(|i| 10.0 * x[0][i] + x[1][i] + 0.1 * (uniform(&mut rng) - 0.5)).collect();
        (x.into_iter().map(Feature::Numeric).collect(), target)
    }

    fn assert_linear_ranking(shares: &[f64]) {
        assert_sums_to_one(shares);
        assert!(shares[0] > shares[1] && shares[1] > shares[2], "expected x0 > x1 > x2: {shares:?}");
        assert!(shares[0] > 0.9, "x0 explains nearly everything: {shares:?}");
        assert!(shares[2] < 0.05, "x2 is irrelevant: {shares:?}");
    }

    #[test]
    fn ranks_parameters_by_their_effect() {
        let (features, target) = linear(400, 1);
        assert_linear_ranking(&importance(&features, &target, 7));
    }

    #[test]
    fn more_than_max_rows_is_sampled_and_keeps_the_ranking() {
        let (features, target) = linear(3 * MAX_ROWS, 2);
        assert_linear_ranking(&importance(&features, &target, 7));
    }

    #[test]
    fn the_sample_spreads_over_the_whole_sweep() {
        // Early trials respond to x1, the later (and more numerous) ones to x0.
        let mut rng = SplitMix64(12);
        let n = 3 * MAX_ROWS;
        let (x0, x1) = (numbers(&mut rng, n), numbers(&mut rng, n));
        let target: Vec<f64> = (0..n).map(|i| if i < MAX_ROWS { x1[i] } else { x0[i] }).collect();
        let shares = importance(&[Feature::Numeric(x0), Feature::Numeric(x1)], &target, 7);
        assert!(shares[0] > 0.5 && shares[1] > 0.2, "both regimes are seen: {shares:?}");
    }

    #[test]
    fn a_deciding_category_beats_numeric_noise() {
        let mut rng = SplitMix64(3);
        let n = 300;
        let optimizer: Vec<u32> = (0..n).map(|_| rng.below(3) as u32).collect();
        let noise = numbers(&mut rng, n);
        // Codes need not be in the order of their effect.
        let effect = [1.0, 3.0, 0.5];
        let target: Vec<f64> = optimizer.iter().map(|&c| effect[c as usize] + 0.05 * uniform(&mut rng)).collect();
        let shares = importance(&[Feature::Numeric(noise), Feature::Categorical(optimizer)], &target, 7);
        assert_sums_to_one(&shares);
        assert!(shares[1] > 0.95, "the optimizer decides the metric: {shares:?}");
    }

    #[test]
    fn a_constant_target_explains_nothing() {
        let mut rng = SplitMix64(4);
        let features = vec![Feature::Numeric(numbers(&mut rng, 100)), Feature::Categorical(vec![1; 100])];
        assert_eq!(importance(&features, &[0.25; 100], 7), vec![0.0, 0.0]);
    }

    #[test]
    fn too_few_trials_explain_nothing() {
        let (features, target) = linear(MIN_TRIALS - 1, 5);
        assert_eq!(importance(&features, &target, 7), vec![0.0; 3]);
        // Rows with a non-finite target do not count towards the minimum.
        let mut target = target;
        target.extend([f64::NAN; 10]);
        assert_eq!(importance(&features, &target, 7), vec![0.0; 3]);
    }

    #[test]
    fn no_parameters_give_an_empty_answer() {
        assert!(importance(&[], &[1.0, 2.0, 3.0], 7).is_empty());
    }

    #[test]
    fn non_finite_targets_are_left_out() {
        let (features, target) = linear(200, 6);
        let clean = importance(&features, &target, 7);
        // The same trials with failed ones (no metric) interleaved, whatever their parameters.
        let interleave = |values: &[f64], extra: f64| -> Vec<f64> {
            values.iter().enumerate().flat_map(|(i, &v)| if i % 4 == 0 { vec![extra, v] } else { vec![v] }).collect()
        };
        let bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let mut dirty_target = Vec::new();
        for (i, &v) in target.iter().enumerate() {
            if i % 4 == 0 {
                dirty_target.push(bad[i % 3]);
            }
            dirty_target.push(v);
        }
        let dirty_features: Vec<Feature> = features
            .iter()
            .map(|f| match f {
                Feature::Numeric(values) => Feature::Numeric(interleave(values, 1e9)),
                Feature::Categorical(_) => unreachable!(),
            })
            .collect();
        assert_eq!(importance(&dirty_features, &dirty_target, 7), clean);
    }

    #[test]
    fn missing_parameter_values_are_tolerated() {
        let (mut features, target) = linear(400, 8);
        let Feature::Numeric(x0) = &mut features[0] else { unreachable!() };
        x0.iter_mut().step_by(5).for_each(|v| *v = f64::NAN);
        let mut rng = SplitMix64(9);
        let category = (0..400).map(|i| if i % 3 == 0 { MISSING } else { rng.below(4) as u32 }).collect();
        features.push(Feature::Categorical(category));
        // A parameter listed for fewer trials than the metric: the rest have no value.
        features.push(Feature::Numeric(numbers(&mut rng, 100)));
        let shares = importance(&features, &target, 7);
        assert_sums_to_one(&shares);
        assert!(shares[0] > 0.8, "x0 still dominates: {shares:?}");
        assert!(shares[1] > shares[2] && shares[1] > shares[3] && shares[1] > shares[4], "{shares:?}");
    }

    #[test]
    fn having_a_value_at_all_can_be_what_matters() {
        // Momentum is only set for some trials, and those are the ones that do well.
        let mut rng = SplitMix64(10);
        let n = 200;
        let momentum: Vec<f64> =
            (0..n).map(|i| if i % 2 == 0 { 0.5 + 0.5 * uniform(&mut rng) } else { f64::NAN }).collect();
        let noise = numbers(&mut rng, n);
        let target: Vec<f64> =
            momentum.iter().map(|m| if m.is_nan() { 1.0 } else { 0.0 } + 0.05 * uniform(&mut rng)).collect();
        let shares = importance(&[Feature::Numeric(noise), Feature::Numeric(momentum)], &target, 7);
        assert_sums_to_one(&shares);
        assert!(shares[1] > 0.9, "{shares:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_answer() {
        let (features, target) = linear(3 * MAX_ROWS, 11);
        let first = importance(&features, &target, 42);
        assert_eq!(importance(&features, &target, 42), first);
        // Another seed gives another sample and other trees, but not another story.
        let other = importance(&features, &target, 43);
        assert_ne!(other, first);
        assert_linear_ranking(&other);
    }
}
