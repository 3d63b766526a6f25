//! `[resources]`: whole GPUs, shares of one GPU for packing, fused groups and CUDA graphs, each
//! refused with the file and key named when out of range.

use std::path::Path;
use sweep_spec::{Resources, SweepFile, TrialSpec};

fn resources(table: &str) -> Result<Resources, String> {
    let text = format!("name = \"r\"\nworkload = \"mlp\"\n[resources]\n{table}\n");
    SweepFile::parse(&text, Path::new("r.toml"), Path::new(".")).map(|f| f.resources).map_err(|e| e.to_string())
}

#[test]
fn a_gpu_share_is_a_fraction_of_one_gpu() {
    assert_eq!(
        resources("gpu_share = 0.25").unwrap(),
        Resources { gpus: 1, gpu_share: Some(0.25), ..Resources::default() }
    );
    assert_eq!(resources("gpus = 1\ngpu_share = 0.5").unwrap().gpu_share, Some(0.5));
    assert_eq!(resources("gpu_share = 1").unwrap(), Resources::default());
    for bad in ["gpu_share = 0", "gpu_share = 1.5", "gpu_share = -0.1", "gpu_share = \"half\""] {
        let err = resources(bad).unwrap_err();
        assert!(err.contains("r.toml") && err.contains("resources.gpu_share"), "{bad}: {err}");
    }
    let err = resources("gpus = 2\ngpu_share = 0.5").unwrap_err();
    assert!(err.contains("gpus > 1"), "{err}");
    let err = resources("gpu = 1").unwrap_err();
    assert!(err.contains("resources.gpu") && err.contains("gpu_share"), "{err}");
}

#[test]
fn cuda_graphs_are_on_unless_switched_off_and_never_change_a_trial_id() {
    assert!(resources("").unwrap().cuda_graphs);
    assert!(!resources("cuda_graphs = false").unwrap().cuda_graphs);
    let err = resources("cuda_graphs = \"off\"").unwrap_err();
    assert!(err.contains("r.toml") && err.contains("resources.cuda_graphs"), "{err}");

    let trials = |table: &str| -> Vec<TrialSpec> {
        let text = format!("name = \"r\"\nworkload = \"mlp\"\n[grid]\nseed = [0, 1]\n[resources]\n{table}\n");
        sweep_spec::expand(&SweepFile::parse(&text, Path::new("r.toml"), Path::new(".")).unwrap()).unwrap()
    };
    let (on, off) = (trials(""), trials("cuda_graphs = false"));
    assert_eq!(on.iter().map(|t| &t.id).collect::<Vec<_>>(), off.iter().map(|t| &t.id).collect::<Vec<_>>());
    // Specs written before the switch existed read as graphs on; a spec with graphs on says nothing.
    let json = serde_json::to_value(&on[0]).unwrap();
    assert!(json["resources"].get("cuda_graphs").is_none(), "{json}");
    assert_eq!(serde_json::to_value(&off[0]).unwrap()["resources"]["cuda_graphs"], false);
    let back: TrialSpec = serde_json::from_value(json).unwrap();
    assert!(back.resources.cuda_graphs);
}
