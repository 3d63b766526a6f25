//! The `xmc_tree` trial: read the train and test files, build the label tree, train the model,
//! rank the test points by beam search and report one record with every metric. Progress goes to
//! stderr; the record goes to the sink.

use crate::bow::{self, Dataset};
use crate::error::XmcError;
use crate::metrics;
use crate::model::{Model, TrainParams};
use crate::params::Params;
use crate::partition::{LabelGraph, LabelGraphKind, Partitioner, SplitInputs};
use crate::pifa;
use crate::tree::{Node, Tree};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::time::Instant;
use sweep_spec::sample::SplitMix64;
use sweep_spec::{EpochRecord, TrialSpec};

/// Labels ranked per test point: enough for every @k measure (k ≤ 5).
const TOP: usize = 5;

/// Runs one trial of `spec` and hands its record to `sink`.
pub fn run(spec: &TrialSpec, sink: &mut dyn FnMut(EpochRecord) -> anyhow::Result<()>) -> Result<(), XmcError> {
    let params = Params::parse(&spec.params)?;
    let (train_path, test_path) = crate::data::resolve(spec)?;
    let threads = worker_threads(params.threads);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start {threads} worker threads: {e}"))?;
    let metrics = pool.install(|| {
        let started = Instant::now();
        let train = bow::read(&train_path).map_err(anyhow::Error::from)?;
        let test = bow::read(&test_path).map_err(anyhow::Error::from)?;
        if (test.features(), test.labels()) != (train.features(), train.labels()) {
            return Err(XmcError::bad_config(format!(
                "data.test: {} declares {} features and {} labels, but the training file {} declares {} and {}",
                test_path.display(),
                test.features(),
                test.labels(),
                train_path.display(),
                train.features(),
                train.labels()
            )));
        }
        eprintln!(
            "xmc_tree: read {} train and {} test points, {} features, {} labels in {:.1} s",
            train.points(),
            test.points(),
            train.features(),
            train.labels(),
            started.elapsed().as_secs_f64()
        );
        train_and_evaluate(train, test, &params)
    })?;
    sink(EpochRecord { epoch: 1, step: None, metrics })?;
    Ok(())
}

/// `threads` = 0 means the trial's share of the cores that the agent hands out
/// (`SWEEP_CPU_THREADS`), or all cores outside an agent (rayon's 0).
fn worker_threads(threads: usize) -> usize {
    match threads {
        0 => std::env::var("SWEEP_CPU_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(0),
        n => n,
    }
}

/// Everything after reading: the study proper. Returns the record's metrics.
pub fn train_and_evaluate(
    mut train: Dataset,
    mut test: Dataset,
    p: &Params,
) -> Result<BTreeMap<String, f64>, XmcError> {
    // Unit-length points, as PIFA and the classifiers assume (the BoW files are usually tf-idf).
    train.x.normalize_rows();
    test.x.normalize_rows();

    let started = Instant::now();
    let z = pifa::embed(&train.x, &train.y.transpose());
    let graph = match p.partitioner {
        Partitioner::Metis => Some(match p.label_graph {
            LabelGraphKind::Cooccurrence => LabelGraph::cooccurrence(&train.y),
            LabelGraphKind::Knn => LabelGraph::knn(&z, p.knn),
        }),
        _ => None,
    };
    let inputs = SplitInputs {
        embeddings: &z,
        graph: graph.as_ref(),
        cluster_iters: p.cluster_iters,
        cluster_eps: p.cluster_eps,
    };
    // Every tree is built before any is trained, so that the embeddings and the label graph can
    // be freed before the weights take their memory.
    let trees: Vec<Tree> = (0..p.n_trees)
        .map(|t| Tree::build(train.labels(), p.partitioner, &inputs, p.shape, tree_seed(p.seed, t)))
        .collect::<anyhow::Result<_>>()?;
    let build_seconds = started.elapsed().as_secs_f64();
    let depth_of = |tree: &Tree| tree.paths(train.labels()).iter().map(Vec::len).max().unwrap_or(1) - 1;
    let (nodes, leaves, depth) = (
        trees.iter().map(|t| t.nodes.len()).sum::<usize>(),
        trees.iter().map(|t| t.leaves().count()).sum::<usize>(),
        trees.iter().map(depth_of).max().unwrap_or(0),
    );
    eprintln!(
        "xmc_tree: {} {:?} tree(s) with {nodes} nodes, {leaves} leaves, depth {depth}{} in {build_seconds:.2} s",
        p.n_trees,
        p.partitioner,
        graph.as_ref().map(|g| format!(" (label graph: {} edges)", g.edges())).unwrap_or_default()
    );
    drop((z, graph));

    // One tree after another, each over every worker: the nodes of one tree already keep the
    // workers busy, and one tree's training buffers at a time bound the memory.
    let started = Instant::now();
    let models: Vec<Model> = trees
        .into_iter()
        .enumerate()
        .map(|(t, tree)| {
            let seed = tree_seed(p.seed, t);
            let params = TrainParams { solver: p.solver, prune_threshold: p.prune_threshold, seed };
            Model::train(tree, &train.x, &train.y, &params)
        })
        .collect();
    let train_seconds = started.elapsed().as_secs_f64();
    let weights: usize = models.iter().map(Model::weights).sum();
    eprintln!("xmc_tree: trained {weights} weights in {train_seconds:.2} s");

    let started = Instant::now();
    let rankings: Vec<Vec<u32>> = (0..test.points())
        .into_par_iter()
        .map(|i| {
            let (idx, val) = test.x.row(i);
            crate::beam::predict_ensemble(&models, idx, val, p.beam, TOP).into_iter().map(|(l, _)| l).collect()
        })
        .collect();
    let infer_seconds = started.elapsed().as_secs_f64();

    let inv_prop = metrics::inverse_propensities(&train.y, p.psp_a, p.psp_b);
    let r = metrics::evaluate(&rankings, &test.y, &inv_prop);
    let mut m = BTreeMap::new();
    for k in [1, 3, 5] {
        m.insert(format!("p_at_{k}"), r.p[k - 1]);
        m.insert(format!("ndcg_at_{k}"), r.ndcg[k - 1]);
        m.insert(format!("psp_at_{k}"), r.psp[k - 1]);
    }
    for (bucket, recall) in metrics::recall_by_frequency(&rankings, &test.y, &metrics::label_counts(&train.y), TOP) {
        m.insert(format!("recall_at_{TOP}_freq_{bucket}"), recall);
    }
    m.insert("build_seconds".into(), build_seconds);
    m.insert("train_seconds".into(), train_seconds);
    m.insert("infer_ms_per_query".into(), 1e3 * infer_seconds / test.points().max(1) as f64);
    // Sizes are totals over the trees; depth and leaf size the largest of any tree.
    m.insert("model_bytes".into(), models.iter().map(Model::bytes).sum::<usize>() as f64);
    m.insert("model_weights".into(), weights as f64);
    m.insert("tree_nodes".into(), nodes as f64);
    m.insert("tree_leaves".into(), leaves as f64);
    m.insert("tree_depth".into(), depth as f64);
    let max_leaf = models.iter().flat_map(|m| m.tree.nodes.iter().map(leaf_size)).max().unwrap_or(0);
    m.insert("max_leaf_labels".into(), max_leaf as f64);
    if let Some(rss) = peak_rss_bytes() {
        m.insert("peak_rss_bytes".into(), rss as f64);
    }
    eprintln!(
        "xmc_tree: P@1/3/5 {:.4}/{:.4}/{:.4}, {:.3} ms per query (beam {}, {} tree(s))",
        r.p[0], r.p[2], r.p[4], m["infer_ms_per_query"], p.beam, p.n_trees
    );
    Ok(m)
}

/// The seed of tree `t` of an ensemble: tree 0 takes the trial's seed itself, so that a one-tree
/// trial builds and trains the tree it always did; the others take well-mixed seeds of their own,
/// below 2^63 so that any tree of an ensemble can be rebuilt alone as a trial (`params.seed` is a
/// signed 64-bit integer).
fn tree_seed(seed: u64, t: usize) -> u64 {
    match t {
        0 => seed,
        t => SplitMix64::new(seed ^ (t as u64).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64() >> 1,
    }
}

fn leaf_size(n: &Node) -> usize {
    match n {
        Node::Leaf(ls) => ls.len(),
        Node::Inner(_) => 0,
    }
}

/// The process's peak resident set (VmHWM) on Linux; `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};
    use sweep_spec::{DataRef, Resources, TrialId};

    fn spec(params: Map<String, Value>, options: Map<String, Value>) -> TrialSpec {
        TrialSpec {
            id: TrialId("0123456789abcdef".into()),
            sweep: "test".into(),
            index: 0,
            workload: "xmc_tree".into(),
            command: None,
            params,
            data: Some(DataRef { format: "xc".into(), path: None, options }),
            resources: Resources::default(),
            checkpoint_every_epochs: None,
            command_bool: Default::default(),
            copy_from: None,
        }
    }

    fn run_one(partitioner: &str, options: &Map<String, Value>) -> BTreeMap<String, f64> {
        run_with(&[("partitioner", json!(partitioner)), ("max_leaf", json!(20))], options)
    }

    /// One trial with the catalogue's defaults but for `changes`; returns its metrics.
    fn run_with(changes: &[(&str, Value)], options: &Map<String, Value>) -> BTreeMap<String, f64> {
        let mut params = crate::params::defaults();
        params.extend(changes.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut records = Vec::new();
        run(&spec(params, options.clone()), &mut |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        assert_eq!(records.len(), 1);
        records.remove(0).metrics
    }

    /// `[data]` options of a synthetic set of `shape`, written into `dir` on first use.
    fn synthetic(dir: &std::path::Path, shape: Value) -> Map<String, Value> {
        crate::data::options(&dir.join("train.txt"), &dir.join("test.txt"), Some(shape.as_object().unwrap().clone()))
    }

    /// The whole path, through the real reader: a synthetic set written on first use, each
    /// partitioner trained and measured. Clustered trees must beat the random one on P@1.
    #[test]
    fn clustered_trees_beat_random_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let shape = json!({"train": 3000, "test": 1000, "labels": 400, "topics": 20, "features": 2000, "seed": 1});
        let options = synthetic(&dir.path().join("xc"), shape);
        let balanced = run_one("kmeans_balanced", &options);
        assert!(dir.path().join("xc/train.txt").exists() && dir.path().join("xc/test.txt").exists());
        let random = run_one("random", &options);
        let metis = run_one("metis", &options);
        for m in [&balanced, &random, &metis] {
            for key in [
                "p_at_1",
                "p_at_3",
                "p_at_5",
                "ndcg_at_1",
                "ndcg_at_3",
                "ndcg_at_5",
                "psp_at_1",
                "psp_at_3",
                "psp_at_5",
            ] {
                assert!((0.0..=1.0).contains(&m[key]), "{key} = {}", m[key]);
            }
            for key in ["build_seconds", "train_seconds", "infer_ms_per_query", "model_bytes"] {
                assert!(m[key] > 0.0, "{key} = {}", m[key]);
            }
            assert!(m["p_at_1"] >= m["p_at_5"]);
        }
        assert!(
            balanced["p_at_1"] > random["p_at_1"] + 0.02,
            "balanced k-means {} vs random {}",
            balanced["p_at_1"],
            random["p_at_1"]
        );
        assert!(metis["p_at_1"] > random["p_at_1"], "metis {} vs random {}", metis["p_at_1"], random["p_at_1"]);
    }

    /// An ensemble is its trees: tree t is the tree a one-tree trial with seed `tree_seed(seed, t)`
    /// builds and trains, so sizes add up exactly; and averaging their probabilities ranks better
    /// than its trees do on average.
    #[test]
    fn an_ensemble_is_its_trees_and_ranks_better_than_they_do_alone() {
        let dir = tempfile::tempdir().unwrap();
        let shape = json!({"train": 2000, "test": 600, "labels": 300, "topics": 15, "features": 1500, "seed": 2});
        let options = synthetic(dir.path(), shape);
        let trial = |seed: u64, n_trees: usize| {
            run_with(&[("max_leaf", json!(20)), ("seed", json!(seed)), ("n_trees", json!(n_trees))], &options)
        };
        let three = trial(5, 3);
        let alone: Vec<_> = (0..3).map(|t| trial(tree_seed(5, t), 1)).collect();
        let sum = |key: &str| alone.iter().map(|m| m[key]).sum::<f64>();
        let mean = |key: &str| sum(key) / alone.len() as f64;
        for key in ["model_weights", "model_bytes", "tree_nodes", "tree_leaves"] {
            assert_eq!(three[key], sum(key), "{key}");
        }
        for key in ["p_at_1", "p_at_5"] {
            assert!(three[key] > mean(key), "{key}: 3 trees {} vs their mean alone {}", three[key], mean(key));
        }
    }

    #[test]
    fn tree_zero_keeps_the_trial_seed_and_the_others_differ() {
        assert_eq!(tree_seed(7, 0), 7);
        let seeds: std::collections::BTreeSet<u64> =
            (0..4).flat_map(|s| (0..5).map(move |t| tree_seed(s, t))).collect();
        assert_eq!(seeds.len(), 20, "every (seed, tree) pair gets its own seed");
    }

    #[test]
    fn bad_data_sections_are_bad_config() {
        let params = crate::params::defaults();
        let mut s = spec(params.clone(), Map::new());
        let err = run(&s, &mut |_| Ok(())).unwrap_err();
        assert!(matches!(&err, XmcError::BadConfig(m) if m.starts_with("data.train: missing")), "{err}");
        s.data.as_mut().unwrap().format = "cifar10".into();
        assert!(matches!(run(&s, &mut |_| Ok(())), Err(XmcError::BadConfig(m)) if m.starts_with("data.format")));
        s.data = None;
        assert!(matches!(run(&s, &mut |_| Ok(())), Err(XmcError::BadConfig(_))));
        let mut bad_branching = params;
        bad_branching.insert("branching".into(), json!(1));
        let dir = tempfile::tempdir().unwrap();
        let options = crate::data::options(&dir.path().join("a"), &dir.path().join("b"), None);
        let err = run(&spec(bad_branching, options.clone()), &mut |_| Ok(())).unwrap_err();
        assert_eq!(err.to_string(), "params.branching: expected an integer >= 2, got 1");
        // Missing files are an error of the run, not of the configuration.
        assert!(matches!(run(&spec(crate::params::defaults(), options), &mut |_| Ok(())), Err(XmcError::Other(_))));
    }
}
