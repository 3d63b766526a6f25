//! A trial's parameters, checked against the `xmc_tree` entry of the workload catalogue (which
//! holds every default) and turned into typed settings; each message names the key.

use crate::error::XmcError;
use crate::partition::{LabelGraphKind, Partitioner};
use crate::solver::{Loss, SolverParams};
use crate::tree::TreeShape;
use serde_json::{Map, Value};
use sweep_spec::workloads::XMC_TREE;

#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub partitioner: Partitioner,
    pub shape: TreeShape,
    pub label_graph: LabelGraphKind,
    pub knn: usize,
    pub cluster_iters: usize,
    pub cluster_eps: f64,
    pub solver: SolverParams,
    pub prune_threshold: f32,
    pub beam: usize,
    /// Trees of the ensemble, each from its own seed.
    pub n_trees: usize,
    pub psp_a: f64,
    pub psp_b: f64,
    /// 0: all cores.
    pub threads: usize,
    pub seed: u64,
}

impl Params {
    pub fn parse(params: &Map<String, Value>) -> Result<Params, XmcError> {
        check_keys(params)?;
        let int = |key: &str, min: i64| -> Result<usize, XmcError> {
            let v = params[key].as_i64().unwrap_or(i64::MIN);
            if v >= min {
                Ok(v as usize)
            } else {
                Err(XmcError::bad_config(format!("params.{key}: expected an integer >= {min}, got {}", params[key])))
            }
        };
        let positive = |key: &str| -> Result<f64, XmcError> {
            match params[key].as_f64() {
                Some(v) if v > 0.0 && v.is_finite() => Ok(v),
                _ => Err(XmcError::bad_config(format!("params.{key}: expected a number > 0, got {}", params[key]))),
            }
        };
        // The catalogue checked every name (`check_keys`), so the typed parse cannot fail.
        let name = |key: &str| params[key].as_str().unwrap_or_default();
        let nonnegative = |key: &str| -> Result<f64, XmcError> {
            match params[key].as_f64() {
                Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
                _ => Err(XmcError::bad_config(format!("params.{key}: expected a number >= 0, got {}", params[key]))),
            }
        };
        let prune = params["prune_threshold"].as_f64().unwrap_or(-1.0);
        if !(prune >= 0.0 && prune.is_finite()) {
            return Err(XmcError::bad_config(format!(
                "params.prune_threshold: expected a number >= 0, got {}",
                params["prune_threshold"]
            )));
        }
        Ok(Params {
            partitioner: Partitioner::parse(name("partitioner")).expect("checked"),
            shape: TreeShape {
                branching: int("branching", 2)?,
                max_leaf: int("max_leaf", 1)?,
                depth: int("depth", 1)?,
            },
            label_graph: LabelGraphKind::parse(name("label_graph")).expect("checked"),
            knn: int("knn", 1)?,
            cluster_iters: int("cluster_iters", 1)?,
            cluster_eps: nonnegative("cluster_eps")?,
            solver: SolverParams {
                loss: Loss::parse(name("loss")).expect("checked"),
                c: positive("c")?,
                max_iter: int("max_iter", 1)?,
                eps: positive("eps")?,
            },
            prune_threshold: prune as f32,
            beam: int("beam", 1)?,
            n_trees: int("n_trees", 1)?,
            psp_a: positive("psp_a")?,
            psp_b: positive("psp_b")?,
            threads: int("threads", 0)?,
            seed: int("seed", 0)? as u64,
        })
    }
}

/// Unknown, missing and mistyped keys, against the catalogue.
fn check_keys(params: &Map<String, Value>) -> Result<(), XmcError> {
    XMC_TREE.check_resolved(params).map_err(XmcError::bad_config)
}

/// The catalogue's defaults, as a resolved trial would carry them.
pub fn defaults() -> Map<String, Value> {
    XMC_TREE.defaults()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_parse() {
        let p = Params::parse(&defaults()).unwrap();
        assert_eq!(p.partitioner, Partitioner::KMeansBalanced);
        assert_eq!(p.shape, TreeShape { branching: 2, max_leaf: 100, depth: 20 });
        assert_eq!(p.solver.loss, Loss::SquaredHinge);
        assert_eq!(p.n_trees, 3);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("branching", json!(1), "params.branching: expected an integer >= 2, got 1"),
            (
                "partitioner",
                json!("spectral"),
                "params.partitioner: expected one of \"kmeans_balanced\", \"kmeans\", \"random\", \"metis\", got \"spectral\"",
            ),
            ("label_graph", json!("full"), "params.label_graph: expected one of \"cooccurrence\", \"knn\", got \"full\""),
            ("c", json!(0), "params.c: expected a number > 0, got 0"),
            ("n_trees", json!(0), "params.n_trees: expected an integer >= 1, got 0"),
            ("beam", json!("wide"), "params.beam: expected an integer (beam width of the tree search at inference), got \"wide\""),
            ("nodes", json!(3), "params.nodes: not a parameter of workload `xmc_tree`"),
        ];
        for (key, value, want) in cases {
            let mut m = defaults();
            m.insert(key.into(), value);
            match Params::parse(&m) {
                Err(XmcError::BadConfig(msg)) => assert!(msg.starts_with(want), "{msg}"),
                other => panic!("{key}: {other:?}"),
            }
        }
        let mut m = defaults();
        m.remove("seed");
        assert!(matches!(Params::parse(&m), Err(XmcError::BadConfig(msg)) if msg.starts_with("params.seed: missing")));
    }
}
