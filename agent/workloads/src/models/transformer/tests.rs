use super::decode::{generate, Prompt, Strategy};
use super::*;
use tch::nn::VarStore;
use tch::Device;

fn spec(form: Form, positions: Positions) -> TransformerSpec {
    TransformerSpec { form, vocab: 23, d_model: 16, heads: 4, layers: 2, ff: 32, max_len: 40, positions, dropout: 0.0 }
}

fn model(vars: &VarStore, spec: &TransformerSpec, seed: i64) -> Transformer {
    let _guard = crate::torch_rng_lock();
    tch::manual_seed(seed);
    Transformer::new(&vars.root(), spec).unwrap()
}

/// Token ids that are no special token, drawn from `seed`: [rows, len].
fn words(rows: i64, len: i64, seed: i64) -> Tensor {
    let _guard = crate::torch_rng_lock();
    tch::manual_seed(seed);
    Tensor::randint_low(tokens::SPECIALS.len() as i64, 23, [rows, len], (Kind::Int64, Device::Cpu))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The fused kernel computes what the textbook loop computes: per head, softmax(q kᵀ / sqrt(d) +
/// mask) v, from the module's own projection weights.
#[test]
fn attention_matches_a_naive_loop_over_heads_queries_and_keys() {
    let vars = VarStore::new(Device::Cpu);
    let (d, heads) = (12, 3);
    let attention = {
        let _guard = crate::torch_rng_lock();
        tch::manual_seed(3);
        Attention::new(&(vars.root() / "a"), d, heads, 0.0)
    };
    let x = {
        let _guard = crate::torch_rng_lock();
        tch::manual_seed(4);
        Tensor::randn([2, 5, d], (Kind::Float, Device::Cpu))
    };
    let key_ok = Tensor::from_slice(&[true, true, true, false, false, true, true, true, true, true]).view([2, 5]);
    let allowed = self_mask(&key_ok, 5, 0, true);
    let (k, v) = attention.keys_values(&x);
    let fused = tch::no_grad(|| attention.attend(&x, &k, &v, &allowed, false));

    let w = vars.variables();
    let project =
        |name: &str, t: &Tensor| t.matmul(&w[&format!("a.{name}.weight")].tr()) + &w[&format!("a.{name}.bias")];
    let (q, k, v) = (project("query", &x), project("key", &x), project("value", &x));
    let dh = d / heads;
    let mixed = Tensor::zeros([2, 5, d], (Kind::Float, Device::Cpu));
    for b in 0..2 {
        for h in 0..heads {
            let cols = |t: &Tensor| t.get(b).narrow(1, h * dh, dh);
            let (qh, kh, vh) = (cols(&q), cols(&k), cols(&v));
            for i in 0..5 {
                let mut scores = Vec::new();
                for j in 0..5 {
                    let visible = (j <= i && key_ok.get(b).int64_value(&[j]) != 0) || j == i;
                    let s = (qh.get(i) * kh.get(j)).sum(Kind::Float).double_value(&[]) / (dh as f64).sqrt();
                    scores.push(if visible { s } else { f64::NEG_INFINITY });
                }
                let top = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f64 = weights.iter().sum();
                let mut row = Tensor::zeros([dh], (Kind::Float, Device::Cpu));
                for (j, wj) in weights.iter().enumerate() {
                    row += vh.get(j as i64) * (wj / total);
                }
                mixed.get(b).get(i).narrow(0, h * dh, dh).copy_(&row);
            }
        }
    }
    let naive = project("out", &mixed);
    assert!(max_diff(&fused, &naive) < 1e-5, "fused attention is {} from the naive loop", max_diff(&fused, &naive));
}

/// Changing a later token leaves every earlier position's output as it was, in both forms.
#[test]
fn a_causal_decoder_sees_no_later_token() {
    for form in [Form::DecoderOnly, Form::EncoderDecoder] {
        let vars = VarStore::new(Device::Cpu);
        let net = model(&vars, &spec(form, Positions::Learned), 1);
        let mut ids = words(2, 12, 2);
        if form == Form::EncoderDecoder {
            ids = Tensor::stack(&[words(2, 12, 5), ids], 1);
        }
        let before = tch::no_grad(|| net.forward_t(&ids, false));
        let changed = ids.copy();
        let target = if form == Form::EncoderDecoder { changed.select(1, 1) } else { changed.shallow_clone() };
        let _ = target.narrow(1, 7, 5).fill_(tokens::UNK + 3);
        let after = tch::no_grad(|| net.forward_t(&changed, false));
        let earlier = |t: &Tensor| t.narrow(1, 0, 7);
        assert!(max_diff(&earlier(&before), &earlier(&after)) < 1e-6, "{form}: an earlier output moved");
        assert!(max_diff(&before.narrow(1, 7, 5), &after.narrow(1, 7, 5)) > 1e-3, "{form}: the change had no effect");
    }
}

/// Padding after a row's tokens changes none of its outputs.
#[test]
fn right_padding_changes_no_real_position() {
    let vars = VarStore::new(Device::Cpu);
    let net = model(&vars, &spec(Form::DecoderOnly, Positions::Sinusoidal), 6);
    let alone = words(1, 6, 7);
    let padded = Tensor::cat(&[&alone, &Tensor::zeros([1, 4], (Kind::Int64, Device::Cpu))], 1);
    let a = tch::no_grad(|| net.forward_t(&alone, false));
    let b = tch::no_grad(|| net.forward_t(&padded, false)).narrow(1, 0, 6);
    assert!(max_diff(&a, &b) < 1e-5, "padding moved the outputs by {}", max_diff(&a, &b));
}

/// A prompt padded on the left, as batched decoding pads prompts of different lengths, gives
/// its last position the logits it has alone.
#[test]
fn left_padding_changes_no_real_position() {
    let vars = VarStore::new(Device::Cpu);
    let net = model(&vars, &spec(Form::DecoderOnly, Positions::Learned), 6);
    let alone = words(1, 6, 7);
    let padded = Tensor::cat(&[&Tensor::zeros([1, 4], (Kind::Int64, Device::Cpu)), &alone], 1);
    let a = tch::no_grad(|| net.forward_t(&alone, false));
    let b = tch::no_grad(|| net.forward_t(&padded, false)).narrow(1, 4, 6);
    assert!(max_diff(&a, &b) < 1e-5, "left padding moved the outputs by {}", max_diff(&a, &b));
}

/// Even columns hold sin(p / 10000^(i/d)), odd ones the cosine of the same angle.
#[test]
fn sinusoidal_positions_follow_the_formula() {
    let table = sinusoids(9, 6);
    for (p, i) in [(0, 0), (3, 0), (3, 1), (8, 4), (8, 5)] {
        let angle = p as f64 / 10000f64.powf((i / 2 * 2) as f64 / 6.0);
        let want = if i % 2 == 0 { angle.sin() } else { angle.cos() };
        let got = table.double_value(&[p, i]);
        assert!((got - want).abs() < 1e-5, "position {p}, column {i}: {got} against {want}");
    }
}

/// A left-padded decoder-only prompt (rows of different lengths) or a source with a `<bos>` prefix.
fn prompts(form: Form) -> (Option<Tensor>, Tensor) {
    match form {
        Form::DecoderOnly => {
            let mut prefix =
                Tensor::cat(&[Tensor::full([3, 1], tokens::BOS, (Kind::Int64, Device::Cpu)), words(3, 5, 8)], 1);
            let _ = prefix.get(1).narrow(0, 0, 3).fill_(tokens::PAD);
            let _ = prefix.get(2).narrow(0, 0, 1).fill_(tokens::PAD);
            let _ = prefix.get(1).narrow(0, 3, 1).fill_(tokens::BOS);
            let _ = prefix.get(2).narrow(0, 1, 1).fill_(tokens::BOS);
            prefix = Tensor::cat(&[prefix, Tensor::full([3, 1], tokens::SEP, (Kind::Int64, Device::Cpu))], 1);
            (None, prefix)
        }
        Form::EncoderDecoder => {
            let source = words(3, 7, 9);
            let _ = source.get(1).narrow(0, 4, 3).fill_(tokens::PAD);
            (Some(source), Tensor::full([3, 1], tokens::BOS, (Kind::Int64, Device::Cpu)))
        }
    }
}

/// Greedy, beam and seeded sampling give the same tokens with the cache as without it, in both
/// forms, from prompts of different lengths.
#[test]
fn decoding_with_a_cache_gives_the_tokens_of_decoding_without() {
    for form in [Form::DecoderOnly, Form::EncoderDecoder] {
        let vars = VarStore::new(Device::Cpu);
        let net = model(&vars, &spec(form, Positions::Learned), 10);
        let (source, prefix) = prompts(form);
        let prompt = Prompt { source: source.as_ref(), prefix: &prefix };
        for strategy in [Strategy::Greedy, Strategy::Beam { width: 3 }, Strategy::Sample { temperature: 0.8, top_k: 5 }]
        {
            let run = |cached| {
                let _guard = crate::torch_rng_lock();
                tch::manual_seed(11);
                generate(&net, &prompt, 12, strategy, cached).unwrap()
            };
            let (with, without) = (run(true), run(false));
            assert_eq!(with.size(), [3, 12]);
            assert!(with.equal(&without), "{form}, {strategy:?}: {with:?} against {without:?}");
        }
    }
}

/// Batched greedy decoding from left-padded prompts picks, for each row, the token the model
/// ranks first after that prompt alone.
#[test]
fn greedy_decoding_of_a_padded_batch_picks_each_prompts_own_argmax() {
    let vars = VarStore::new(Device::Cpu);
    let net = model(&vars, &spec(Form::DecoderOnly, Positions::Learned), 13);
    let (_, prefix) = prompts(Form::DecoderOnly);
    let first = generate(&net, &Prompt { source: None, prefix: &prefix }, 1, Strategy::Greedy, true).unwrap();
    for row in 0..3 {
        let alone = prefix.get(row).masked_select(&prefix.get(row).ne(tokens::PAD)).unsqueeze(0);
        let logits = tch::no_grad(|| net.forward_t(&alone, false)).select(1, -1);
        for never in [tokens::PAD, tokens::BOS, tokens::SEP] {
            let _ = logits.get(0).get(never).fill_(f64::NEG_INFINITY);
        }
        assert_eq!(first.int64_value(&[row, 0]), logits.get(0).argmax(0, false).int64_value(&[]), "row {row}");
    }
}

/// A beam of one is greedy decoding; a beam as wide as the choices is exhaustive, so it returns
/// the likeliest two-token continuation of all, found here by scoring every one.
#[test]
fn beam_search_of_width_one_is_greedy_and_a_full_beam_finds_the_likeliest_sequence() {
    let vars = VarStore::new(Device::Cpu);
    let net = model(&vars, &spec(Form::EncoderDecoder, Positions::Sinusoidal), 12);
    let (source, prefix) = prompts(Form::EncoderDecoder);
    let source = source.unwrap();
    let prompt = Prompt { source: Some(&source), prefix: &prefix };
    let greedy = generate(&net, &prompt, 8, Strategy::Greedy, true).unwrap();
    assert!(greedy.equal(&generate(&net, &prompt, 8, Strategy::Beam { width: 1 }, true).unwrap()));

    let choices: Vec<i64> = (0..23).filter(|t| ![tokens::PAD, tokens::BOS, tokens::SEP].contains(t)).collect();
    let beam = generate(&net, &prompt, 2, Strategy::Beam { width: choices.len() as i64 }, true).unwrap();
    for row in 0..3 {
        let src = source.get(row).unsqueeze(0);
        let logp = |decoder: &Tensor| {
            let n = decoder.size()[0];
            let memory = net.encode(&src.expand([n, -1], false), false);
            tch::no_grad(|| net.decode(decoder, &positions_of(decoder), Some(&memory), None, false))
                .select(1, -1)
                .log_softmax(-1, Kind::Float)
        };
        let first = logp(&Tensor::from_slice(&[tokens::BOS]).view([1, 1])).get(0);
        let firsts = Tensor::from_slice(&choices);
        let second = logp(&Tensor::stack(
            &[Tensor::full([choices.len() as i64], tokens::BOS, (Kind::Int64, Device::Cpu)), firsts],
            1,
        ));
        let mut best = (f64::NEG_INFINITY, (0, 0));
        for (i, &a) in choices.iter().enumerate() {
            let pa = first.double_value(&[a]);
            let candidates: Vec<(f64, i64)> = if a == tokens::EOS {
                vec![(pa, tokens::PAD)]
            } else {
                choices.iter().map(|&b| (pa + second.double_value(&[i as i64, b]), b)).collect()
            };
            for (score, b) in candidates {
                if score > best.0 {
                    best = (score, (a, b));
                }
            }
        }
        let got = (beam.int64_value(&[row, 0]), beam.int64_value(&[row, 1]));
        assert_eq!(got, best.1, "row {row}: the beam chose {got:?}, the likeliest is {:?} at {}", best.1, best.0);
    }
}

#[test]
fn specs_that_cannot_build_are_refused_by_name() {
    let good = spec(Form::DecoderOnly, Positions::Learned);
    for (bad, key) in [
        (TransformerSpec { d_model: 18, ..good }, "d_model"),
        (TransformerSpec { vocab: 5, ..good }, "vocab"),
        (TransformerSpec { max_len: 1, ..good }, "max_len"),
        (TransformerSpec { dropout: 1.0, ..good }, "dropout"),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.starts_with(key), "{err}");
    }
    assert_eq!("decoder_only".parse::<Form>().unwrap(), Form::DecoderOnly);
    assert!("rnn".parse::<Form>().unwrap_err().contains("encoder_decoder, decoder_only"));
}
