//! The `[data]` section of an `xmc_tree` sweep: `format = "xc"`, `train` and `test` paths, and
//! optionally `synthetic = { ... }`, which writes a synthetic pair at those paths on first use so
//! a study runs with nothing downloaded (the same files `sweep data synth --format xc` writes).

use crate::error::XmcError;
use crate::synth::SynthShape;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use sweep_spec::TrialSpec;

/// The `[data]` format this workload reads.
pub const FORMAT: &str = "xc";

const EXPECTED: &str =
    "data: workload `xmc_tree` reads [data] format = \"xc\" with `train` and `test` paths to XC BoW text files";

/// The train and test paths of `spec`, after writing the synthetic pair if asked and absent.
pub fn resolve(spec: &TrialSpec) -> Result<(PathBuf, PathBuf), XmcError> {
    let data =
        spec.data.as_ref().ok_or_else(|| XmcError::bad_config(format!("{EXPECTED}; the sweep has no [data]")))?;
    if data.format != FORMAT {
        return Err(XmcError::bad_config(format!("data.format: expected \"{FORMAT}\", got \"{}\"", data.format)));
    }
    let path = |key: &str| match data.options.get(key).and_then(|v| v.as_str()) {
        Some(p) => Ok(PathBuf::from(p)),
        None => Err(XmcError::bad_config(format!("data.{key}: missing; {EXPECTED}"))),
    };
    let (train, test) = (path("train")?, path("test")?);
    if let Some(table) = data.options.get("synthetic") {
        let shape = synth_shape(table)?;
        if !train.exists() || !test.exists() {
            write_synthetic(&shape, &train, &test)?;
        }
    }
    Ok((train, test))
}

/// `synthetic = { train, test, features, labels, topics, noise, ... }` over `SynthShape::default()`.
pub fn synth_shape(table: &Value) -> Result<SynthShape, XmcError> {
    let Some(t) = table.as_object() else {
        return Err(XmcError::bad_config(format!("data.synthetic: expected a table, got {table}")));
    };
    let mut s = SynthShape::default();
    for (key, v) in t {
        let bad = |what: &str| XmcError::bad_config(format!("data.synthetic.{key}: expected {what}, got {v}"));
        let int = || v.as_u64().map(|n| n as usize).ok_or_else(|| bad("an integer >= 0"));
        let num = || v.as_f64().ok_or_else(|| bad("a number"));
        match key.as_str() {
            "train" => s.train = int()?,
            "test" => s.test = int()?,
            "features" => s.features = int()?,
            "labels" => s.labels = int()?,
            "topics" => s.topics = int()?,
            "labels_per_point" => s.labels_per_point = num()?,
            "words_per_point" => s.words_per_point = num()?,
            "noise" => s.noise = num()?,
            "cross_topic" => s.cross_topic = num()?,
            "zipf" => s.zipf = num()?,
            "topic_words" => s.topic_words = int()?,
            "facets" => s.facets = int()?,
            "facet_words" => s.facet_words = int()?,
            "own_signature" => s.own_signature = int()?,
            "facet_share" => s.facet_share = num()?,
            "signature_share" => s.signature_share = num()?,
            "seed" => s.seed = v.as_u64().ok_or_else(|| bad("an integer >= 0"))?,
            _ => {
                return Err(XmcError::bad_config(format!(
                    "data.synthetic.{key}: not a knob of the synthetic generator; expected one of train, test, features, labels, topics, labels_per_point, words_per_point, noise, cross_topic, zipf, topic_words, facets, facet_words, own_signature, facet_share, signature_share, seed"
                )))
            }
        }
    }
    s.validate().map_err(|e| XmcError::bad_config(format!("data.synthetic.{e}")))?;
    Ok(s)
}

/// Writes into a private folder next to `train`, then renames test before train: concurrent
/// trials of one sweep never read a half-written file, and a present `train` means both are there.
fn write_synthetic(shape: &SynthShape, train: &Path, test: &Path) -> Result<(), XmcError> {
    let dir = train.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", dir.display()))?;
    let tmp = dir.join(format!(".xc-synthetic-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", tmp.display()))?;
    eprintln!("xmc_tree: writing a synthetic XC pair at {} and {}", train.display(), test.display());
    crate::synth::write(shape, &tmp)?;
    if let Some(p) = test.parent() {
        std::fs::create_dir_all(p).map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", p.display()))?;
    }
    for (from, to) in [(tmp.join("test.txt"), test), (tmp.join("train.txt"), train)] {
        std::fs::rename(&from, to).map_err(|e| anyhow::anyhow!("{}: cannot move into place: {e}", to.display()))?;
    }
    let _ = std::fs::remove_dir(&tmp);
    Ok(())
}

/// Convenience for tests and tools: the `[data]` options of a synthetic pair.
pub fn options(train: &Path, test: &Path, synthetic: Option<Map<String, Value>>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("train".into(), Value::from(train.to_string_lossy().into_owned()));
    m.insert("test".into(), Value::from(test.to_string_lossy().into_owned()));
    if let Some(s) = synthetic {
        m.insert("synthetic".into(), Value::Object(s));
    }
    m
}
