//! The one checkpoint format of every study: `dir/latest/` holds `model.safetensors` (the
//! VarStore's variables by name), `optimizer.safetensors` (`Optimizer::state()`) and `meta.json`.
//! It is written aside and renamed into place, so a crash leaves the old or the new one whole.

use crate::optim::Optimizer;
use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

const LATEST: &str = "latest";
/// A checkpoint being written by process <pid>: never read, it may be partial.
const TMP_PREFIX: &str = "ckpt.tmp-";
/// The previous `latest` while the new one is renamed in: complete, the fallback after a crash.
const ASIDE_PREFIX: &str = "ckpt.aside-";
const MODEL: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
const META: &str = "meta.json";

/// Where training stood when the checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub epochs_done: u32,
    /// Batches done into epoch `epochs_done` (0 at an epoch boundary).
    pub batches_done: u64,
    pub global_step: u64,
    /// The workload that wrote it, so a checkpoint of another workload is never loaded.
    pub workload: String,
    /// Whatever else a workload needs to resume (null if nothing).
    pub extra: serde_json::Value,
}

/// Saves model variables, optimizer state and meta to `dir/latest` atomically. The files go to
/// `dir/ckpt.tmp-<pid>/` and are fsynced; the old `latest` is renamed aside, the new one renamed
/// in, and only then is the old one removed. `dir` may be on a shared filesystem: only renames
/// within `dir` are relied on. One writer per `dir` is assumed (a trial has one live attempt);
/// leftovers of crashed writers are removed after a successful save. A `dir` that is a symbolic
/// link is refused: checkpoint folders may sit where others can write, and a planted link must
/// not send a trial's checkpoints (or the removal of its leftovers) elsewhere.
pub fn save(dir: &Path, vars: &tch::nn::VarStore, optimizer: &Optimizer, meta: &Meta) -> anyhow::Result<()> {
    sweep_safe_fs::real_dir(dir).with_context(|| format!("{}: cannot use as the checkpoint folder", dir.display()))?;
    let pid = std::process::id();
    let tmp = dir.join(format!("{TMP_PREFIX}{pid}"));
    remove_if_present(&tmp)?;
    fs::create_dir(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
    let mut model: Vec<(String, Tensor)> = vars.variables().into_iter().collect();
    model.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(&tmp.join(MODEL), &model)?;
    write_tensors(&tmp.join(OPTIMIZER), &optimizer.state())?;
    write_synced(&tmp.join(META), &serde_json::to_vec_pretty(meta)?)?;
    sync_dir(&tmp)?;

    let latest = dir.join(LATEST);
    let aside = dir.join(format!("{ASIDE_PREFIX}{pid}"));
    // A directory cannot be renamed over a non-empty one, hence the step aside.
    let had_old = latest.symlink_metadata().is_ok();
    if had_old {
        remove_if_present(&aside)?;
        fs::rename(&latest, &aside)
            .with_context(|| format!("{}: cannot move the previous checkpoint aside", latest.display()))?;
    }
    fs::rename(&tmp, &latest).with_context(|| format!("{}: cannot rename into {}", tmp.display(), latest.display()))?;
    sync_dir(dir)?;
    // From here `latest` is the new checkpoint; whatever else is ours is garbage.
    for entry in fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))? {
        let path = entry?.path();
        if is_leftover(&path) {
            remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// Loads `dir/latest` into `vars` and `optimizer` and returns its meta; `Ok(None)` if there is no
/// checkpoint. After a crash mid-save, `latest` may be missing while a complete aside copy exists:
/// then the newest complete aside copy is loaded. Temporary folders are never read. Everything is
/// checked before anything is copied, so an error leaves `vars` and `optimizer` as they were.
pub fn load(dir: &Path, vars: &mut tch::nn::VarStore, optimizer: &mut Optimizer) -> anyhow::Result<Option<Meta>> {
    let Some((source, meta)) = choose(dir)? else {
        return Ok(None);
    };
    let model_path = source.join(MODEL);
    let model = read_tensors(&model_path)?;
    let variables = vars.variables();
    let mut names: Vec<&String> = variables.keys().collect();
    names.sort();
    for name in names {
        let var = &variables[name];
        let saved =
            model.get(name).ok_or_else(|| anyhow!("{}: missing tensor `{name}` of the model", model_path.display()))?;
        if saved.size() != var.size() || saved.kind() != var.kind() {
            bail!(
                "{}: tensor `{name}` has shape {:?} and dtype {:?}, the model's is {:?} and {:?}",
                model_path.display(),
                saved.size(),
                saved.kind(),
                var.size(),
                var.kind()
            );
        }
    }
    if let Some(extra) = model.keys().find(|k| !variables.contains_key(*k)) {
        bail!("{}: unexpected tensor `{extra}`; the checkpoint is of another model", model_path.display());
    }
    let optimizer_path = source.join(OPTIMIZER);
    let state = read_tensors(&optimizer_path)?;
    // Checks all of its state before copying any of it; after it succeeds nothing can fail.
    optimizer.load_state(&state).map_err(|e| anyhow!("{}: {e}", optimizer_path.display()))?;
    tch::no_grad(|| {
        for (name, mut var) in variables {
            var.copy_(&model[&name]);
        }
    });
    Ok(Some(meta))
}

/// The checkpoint to load: a complete `latest`, else the newest complete aside copy.
fn choose(dir: &Path) -> anyhow::Result<Option<(PathBuf, Meta)>> {
    let latest = dir.join(LATEST);
    let latest_state = complete(&latest);
    if let Ok(Some(meta)) = &latest_state {
        return Ok(Some((latest, meta.clone())));
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot list", dir.display())),
    };
    let mut best: Option<(PathBuf, Meta)> = None;
    for entry in entries {
        let path = entry?.path();
        let is_aside = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(ASIDE_PREFIX));
        if let (true, Ok(Some(meta))) = (is_aside, complete(&path)) {
            let position = |m: &Meta| (m.epochs_done, m.batches_done, m.global_step);
            if best.as_ref().is_none_or(|(_, b)| position(&meta) > position(b)) {
                best = Some((path, meta));
            }
        }
    }
    match (best, latest_state) {
        (Some(found), _) => Ok(Some(found)),
        // A `latest` that is there but broken is not a crash of ours: say so rather than restart.
        (None, Err(e)) => Err(e),
        (None, Ok(_)) => Ok(None),
    }
}

/// The meta of a complete checkpoint folder; `Ok(None)` if there is no folder, an error naming
/// what is wrong if it is incomplete.
fn complete(folder: &Path) -> anyhow::Result<Option<Meta>> {
    if !folder.is_dir() {
        return Ok(None);
    }
    for file in [MODEL, OPTIMIZER] {
        if !folder.join(file).is_file() {
            bail!("{}: incomplete checkpoint, no {file}", folder.display());
        }
    }
    let path = folder.join(META);
    let text = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
    let meta = serde_json::from_slice(&text).with_context(|| format!("{}: not checkpoint meta", path.display()))?;
    Ok(Some(meta))
}

fn is_leftover(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TMP_PREFIX) || n.starts_with(ASIDE_PREFIX))
}

/// Writes tensors (from any device) as safetensors and fsyncs the file.
fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> anyhow::Result<()> {
    let on_cpu: Vec<(&str, Tensor)> =
        tensors.iter().map(|(name, t)| (name.as_str(), t.to_device(Device::Cpu).contiguous())).collect();
    Tensor::write_safetensors(&on_cpu, path).with_context(|| format!("{}: cannot write", path.display()))?;
    fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("{}: cannot fsync", path.display()))
}

fn read_tensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    Ok(Tensor::read_safetensors(path)
        .with_context(|| format!("{}: cannot read the checkpoint", path.display()))?
        .into_iter()
        .collect())
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut file = sweep_safe_fs::create_new(path).with_context(|| format!("{}: cannot create", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("{}: cannot write", path.display()))
}

/// Makes a folder's entries (a rename, new files) durable. Some network filesystems refuse to
/// fsync a directory (EINVAL); they order metadata operations themselves, so that is not an error.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::File::open(dir).and_then(|f| f.sync_all()) {
        Err(e) if e.kind() != std::io::ErrorKind::InvalidInput => {
            Err(e).with_context(|| format!("{}: cannot fsync", dir.display()))
        }
        _ => Ok(()),
    }
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("{}: cannot remove", path.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{LrSchedule, OptimizerConfig};
    use serde_json::json;
    use tch::nn::VarStore;
    use tch::Kind;

    /// A 4 -> 3 linear model; `init` picks its starting weights so a restored model can be told
    /// from a fresh one.
    fn model(init: f32) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let w: Vec<f32> = (0..12).map(|i| init * ((i as f32) * 0.37).sin()).collect();
        let linear = vs.root() / "linear";
        let _ = linear.var_copy("weight", &Tensor::from_slice(&w).view([3, 4]));
        let _ = linear.var_copy("bias", &Tensor::from_slice(&[init, -init, 0.5 * init]));
        vs
    }

    /// Fixed inputs and targets; batch `k` is a different slice each step.
    fn batch(k: i64) -> (Tensor, Tensor) {
        let x = Tensor::arange(8 * 4, (Kind::Float, Device::Cpu)).view([8, 4]).sin() + k as f64 * 0.1;
        let y = Tensor::arange(8 * 3, (Kind::Float, Device::Cpu)).view([8, 3]).cos();
        (x, y)
    }

    fn optimizer(table: &serde_json::Value, vs: &VarStore) -> Optimizer {
        Optimizer::new(OptimizerConfig::from_params(table.as_object().unwrap(), 0.05).unwrap(), vs)
    }

    /// Global steps `from..to` with a cosine schedule of 5 steps an epoch.
    fn train(vs: &VarStore, opt: &mut Optimizer, from: u64, to: u64) {
        let schedule = LrSchedule::from_params(Some(&json!({"name": "cosine", "warmup_epochs": 0.5})), 2).unwrap();
        let base = opt.config().lr;
        for step in from..to {
            let (x, y) = batch(step as i64);
            let v = vs.variables();
            let d = x.linear(&v["linear.weight"], Some(&v["linear.bias"])) - y;
            opt.zero_grad();
            (&d * &d).mean(Kind::Float).backward();
            opt.step(schedule.lr(base, (step / 5) as u32, step % 5, 5));
        }
    }

    fn meta(step: u64) -> Meta {
        Meta {
            epochs_done: (step / 5) as u32,
            batches_done: step % 5,
            global_step: step,
            workload: "test".into(),
            extra: json!({"note": "resume"}),
        }
    }

    fn assert_same(a: (&VarStore, &Optimizer), b: (&VarStore, &Optimizer), what: &str) {
        let (va, vb) = (a.0.variables(), b.0.variables());
        assert_eq!(va.len(), vb.len());
        for (name, t) in &va {
            assert!(t.equal(&vb[name]), "{what}: variable {name} differs");
        }
        let (sa, sb) = (a.1.state(), b.1.state());
        assert_eq!(sa.len(), sb.len());
        for ((name, x), (other, y)) in sa.iter().zip(&sb) {
            assert_eq!(name, other);
            assert!(x.equal(y), "{what}: optimizer state {name} differs");
        }
    }

    #[test]
    fn a_resumed_run_is_bit_identical_to_an_uninterrupted_one() {
        let tables = [
            json!({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}),
            json!({"name": "adam", "lr": 0.01}),
            json!({"name": "adamw", "lr": 0.01, "grad_clip": 0.5}),
        ];
        for table in tables {
            let straight_vs = model(0.3);
            let mut straight = optimizer(&table, &straight_vs);
            train(&straight_vs, &mut straight, 0, 10);

            let dir = tempfile::tempdir().unwrap();
            let first_vs = model(0.3);
            let mut first = optimizer(&table, &first_vs);
            train(&first_vs, &mut first, 0, 5);
            save(dir.path(), &first_vs, &first, &meta(5)).unwrap();
            drop((first, first_vs));

            let mut resumed_vs = model(-1.0);
            let mut resumed = optimizer(&table, &resumed_vs);
            let loaded = load(dir.path(), &mut resumed_vs, &mut resumed).unwrap();
            assert_eq!(loaded, Some(meta(5)), "{table}");
            assert_eq!(resumed.steps(), 5);
            train(&resumed_vs, &mut resumed, 5, 10);
            assert_same((&straight_vs, &straight), (&resumed_vs, &resumed), &table.to_string());
        }
    }

    #[test]
    fn a_linked_checkpoint_folder_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        fs::write(elsewhere.join("ckpt.aside-1"), b"not ours").unwrap();
        let dir = tmp.path().join("trial");
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        let vs = model(0.3);
        let opt = optimizer(&json!({"name": "adam", "lr": 0.01}), &vs);
        let err = format!("{:#}", save(&dir, &vs, &opt, &meta(1)).unwrap_err());
        assert!(err.contains(&dir.display().to_string()) && err.contains("symbolic link"), "{err}");
        let names: Vec<_> = fs::read_dir(&elsewhere).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ckpt.aside-1")]);
    }

    #[test]
    fn no_checkpoint_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut vs = model(0.3);
        let mut opt = optimizer(&json!({"name": "adam", "lr": 0.01}), &vs);
        assert_eq!(load(&dir.path().join("absent"), &mut vs, &mut opt).unwrap(), None);
        assert_eq!(load(dir.path(), &mut vs, &mut opt).unwrap(), None);
        // A half-written temporary folder alone is no checkpoint either.
        fs::create_dir(dir.path().join("ckpt.tmp-7")).unwrap();
        fs::write(dir.path().join("ckpt.tmp-7").join(MODEL), b"trunc").unwrap();
        assert_eq!(load(dir.path(), &mut vs, &mut opt).unwrap(), None);
    }

    #[test]
    fn a_crash_mid_save_leaves_a_loadable_checkpoint() {
        let table = json!({"name": "adam", "lr": 0.01});
        let dir = tempfile::tempdir().unwrap();
        let vs = model(0.3);
        let mut opt = optimizer(&table, &vs);
        train(&vs, &mut opt, 0, 3);
        save(dir.path(), &vs, &opt, &meta(3)).unwrap();
        let expected: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();

        // Crash between "old latest moved aside" and "new one renamed in", with the new one half
        // written: an aside folder, a partial tmp folder, no latest.
        fs::rename(dir.path().join(LATEST), dir.path().join("ckpt.aside-4242")).unwrap();
        let tmp = dir.path().join("ckpt.tmp-4242");
        fs::create_dir(&tmp).unwrap();
        let full = fs::read(dir.path().join("ckpt.aside-4242").join(MODEL)).unwrap();
        fs::write(tmp.join(MODEL), &full[..full.len() / 2]).unwrap();

        let mut fresh_vs = model(-1.0);
        let mut fresh = optimizer(&table, &fresh_vs);
        assert_eq!(load(dir.path(), &mut fresh_vs, &mut fresh).unwrap(), Some(meta(3)));
        for (name, t) in &expected {
            assert!(fresh_vs.variables()[name].equal(t), "{name}");
        }
        assert_eq!(fresh.steps(), 3);

        // With a complete latest beside an older aside copy, latest wins.
        train(&fresh_vs, &mut fresh, 3, 4);
        fs::create_dir(dir.path().join(LATEST)).unwrap();
        for file in [MODEL, OPTIMIZER, META] {
            fs::copy(dir.path().join("ckpt.aside-4242").join(file), dir.path().join(LATEST).join(file)).unwrap();
        }
        save(dir.path(), &fresh_vs, &fresh, &meta(4)).unwrap();
        // The save cleaned up every leftover.
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, [LATEST]);
        fs::create_dir(dir.path().join("ckpt.aside-1")).unwrap();
        for file in [MODEL, OPTIMIZER] {
            fs::copy(dir.path().join(LATEST).join(file), dir.path().join("ckpt.aside-1").join(file)).unwrap();
        }
        fs::write(dir.path().join("ckpt.aside-1").join(META), serde_json::to_vec(&meta(3)).unwrap()).unwrap();
        let mut again_vs = model(-1.0);
        let mut again = optimizer(&table, &again_vs);
        assert_eq!(load(dir.path(), &mut again_vs, &mut again).unwrap(), Some(meta(4)));
        assert_same((&fresh_vs, &fresh), (&again_vs, &again), "latest over aside");
    }

    #[test]
    fn a_missing_tensor_is_an_error_naming_it_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let vs = model(0.3);
        let mut opt = optimizer(&json!({"name": "sgd", "lr": 0.1}), &vs);
        train(&vs, &mut opt, 0, 2);
        save(dir.path(), &vs, &opt, &meta(2)).unwrap();

        // The model grew a variable the checkpoint lacks.
        let mut bigger = model(-1.0);
        let _ = (bigger.root() / "head").var_copy("bias", &Tensor::from_slice(&[1.0f32, 2.0]));
        let mut bigger_opt = optimizer(&json!({"name": "sgd", "lr": 0.1}), &bigger);
        let err = load(dir.path(), &mut bigger, &mut bigger_opt).unwrap_err().to_string();
        assert!(err.contains("missing tensor `head.bias`") && err.contains(MODEL), "{err}");
        assert!(bigger.variables()["linear.bias"].equal(&model(-1.0).variables()["linear.bias"]));

        // Plain SGD keeps no moments, so an Adam optimizer finds its first one missing.
        let mut same = model(-1.0);
        let mut adam = optimizer(&json!({"name": "adam", "lr": 0.1}), &same);
        let err = load(dir.path(), &mut same, &mut adam).unwrap_err().to_string();
        assert!(err.contains("missing tensor `exp_avg/linear.bias`") && err.contains(OPTIMIZER), "{err}");
        assert!(same.variables()["linear.weight"].equal(&model(-1.0).variables()["linear.weight"]));
        assert_eq!(adam.steps(), 0);
    }
}
