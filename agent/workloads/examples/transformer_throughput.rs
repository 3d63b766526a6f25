//! Training throughput of `seq2seq`'s transformer in tokens per second: forward, cross-entropy,
//! backward and an AdamW step over random token batches, as `bench/seq2seq/compare.py` times the
//! same network in PyTorch. Prints one JSON line.
//!
//!   cargo run --release -p sweep-workloads --example transformer_throughput -- \
//!       --d-model 128 --layers 2 --heads 4 --seq 32 --batch 32 --vocab 1973 --steps 20 --threads 2

use std::time::Instant;
use sweep_workloads::models::transformer::{Form, Positions, Transformer, TransformerSpec};
use sweep_workloads::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use sweep_workloads::tch::nn::{ModuleT, VarStore};
use sweep_workloads::tch::{self, Device, Kind, Reduction, Tensor};

fn arg(args: &[String], name: &str, default: i64) -> i64 {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{name}: expected an integer"))
        }
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (d_model, layers, heads) = (arg(&args, "--d-model", 128), arg(&args, "--layers", 2), arg(&args, "--heads", 4));
    let (seq, batch, vocab) = (arg(&args, "--seq", 32), arg(&args, "--batch", 32), arg(&args, "--vocab", 1973));
    let (steps, threads) = (arg(&args, "--steps", 20), arg(&args, "--threads", 0));
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    tch::manual_seed(0);
    let vars = VarStore::new(Device::Cpu);
    let spec = TransformerSpec {
        form: Form::DecoderOnly,
        vocab,
        d_model,
        heads,
        layers,
        ff: 4 * d_model,
        max_len: seq,
        positions: Positions::Learned,
        dropout: 0.0,
    };
    let net = Transformer::new(&vars.root(), &spec).expect("a valid transformer");
    let mut optimizer = Optimizer::new(OptimizerConfig::new(OptimizerKind::AdamW, 1e-3), &vars);
    // Token ids above the five special tokens, as real data has them.
    let inputs = Tensor::randint_low(5, vocab, [batch, seq], (Kind::Int64, Device::Cpu));
    let labels = Tensor::randint_low(5, vocab, [batch, seq], (Kind::Int64, Device::Cpu));
    let mut step = || {
        optimizer.zero_grad();
        let logits = net.forward_t(&inputs, true);
        let loss =
            logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(&labels.view([-1]), None, Reduction::Mean, 0, 0.0);
        loss.backward();
        optimizer.step(1e-3);
        loss.double_value(&[])
    };
    for _ in 0..3 {
        step();
    }
    let start = Instant::now();
    let mut last = 0.0;
    for _ in 0..steps {
        last = step();
    }
    let seconds = start.elapsed().as_secs_f64();
    let parameters: i64 = vars.trainable_variables().iter().map(|t| t.numel() as i64).sum();
    println!(
        "{{\"impl\": \"tch\", \"tokens_per_second\": {:.1}, \"seconds\": {seconds:.3}, \"steps\": {steps}, \"parameters\": {parameters}, \"threads\": {}, \"loss\": {last:.4}}}",
        (batch * seq * steps) as f64 / seconds,
        tch::get_num_threads()
    );
}
