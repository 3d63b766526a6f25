//! A developer's tool for the label-tree study without the sweep machinery:
//!
//!   cargo run --release -p sweep-xmc --example xc -- synth DIR [knob=value ...]
//!   cargo run --release -p sweep-xmc --example xc -- train TRAIN TEST [param=value ...]
//!
//! `synth` takes the knobs of `[data] synthetic = {...}`; `train` takes `xmc_tree` parameters
//! (catalogue defaults otherwise) and prints the trial's metrics as one JSON object.

use serde_json::{Map, Value};

fn pairs(args: &[String]) -> anyhow::Result<Map<String, Value>> {
    args.iter()
        .map(|a| {
            let (k, v) = a.split_once('=').ok_or_else(|| anyhow::anyhow!("expected key=value, got {a}"))?;
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v));
            Ok((k.to_string(), value))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("synth") if args.len() >= 2 => {
            let shape = sweep_xmc::data::synth_shape(&Value::Object(pairs(&args[2..])?))?;
            std::fs::create_dir_all(&args[1])?;
            sweep_xmc::synth::write(&shape, std::path::Path::new(&args[1]))
        }
        Some("train") if args.len() >= 3 => {
            let mut params = sweep_xmc::params::defaults();
            params.extend(pairs(&args[3..])?);
            let p = sweep_xmc::params::Params::parse(&params)?;
            let pool = rayon::ThreadPoolBuilder::new().num_threads(p.threads).build()?;
            let train = sweep_xmc::bow::read(args[1].as_ref())?;
            let test = sweep_xmc::bow::read(args[2].as_ref())?;
            let m = pool.install(|| sweep_xmc::train_and_evaluate(train, test, &p))?;
            println!("{}", serde_json::to_string(&m)?);
            Ok(())
        }
        _ => anyhow::bail!("usage: xc synth DIR [knob=value ...] | xc train TRAIN TEST [param=value ...]"),
    }
}
