//! The multimodal network: an image encoder (a trunk of `models`), a text encoder (a bag of
//! embeddings or a transformer encoder), and one of seven ways to fuse them into class logits.
//!
//! As a [`ModuleT`] it reads one i64 tensor per batch, each row an example packed as [`Layout`]
//! says: whether the image and the text are present, the image's bytes, the caption's token ids.
//! A modality that is absent (removed at test time, or dropped in training) contributes nothing:
//! its features are zero, late fusion averages the logits of the modalities present, and FiLM
//! leaves the image features as they are.

use crate::models::transformer::{self, self_mask, tokens, Block, Encoder, Positions, Source, TransformerSpec};
use crate::models::{self, Arch, ModelSpec, Trunk};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// How the two modalities become one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// The image encoder alone.
    ImageOnly,
    /// The text encoder alone.
    TextOnly,
    /// A classifier per modality, their logits averaged.
    Late,
    /// Both feature vectors side by side into one hidden layer.
    Concat,
    /// A gated multimodal unit (Arevalo et al. 2017): a learned gate mixes the two, unit by unit.
    Gated,
    /// The caption scales and shifts the image's feature map, channel by channel (Perez et al.
    /// 2018).
    Film,
    /// The caption's tokens, with a learned summary token, attend to the image's patches.
    CrossAttention,
}

crate::params::named!(Fusion, "fusion",
    Fusion::ImageOnly => "image_only", Fusion::TextOnly => "text_only", Fusion::Late => "late",
    Fusion::Concat => "concat", Fusion::Gated => "gated", Fusion::Film => "film",
    Fusion::CrossAttention => "cross_attention");

impl Fusion {
    #[cfg(test)]
    pub const ALL: [Fusion; 7] = [
        Fusion::ImageOnly,
        Fusion::TextOnly,
        Fusion::Late,
        Fusion::Concat,
        Fusion::Gated,
        Fusion::Film,
        Fusion::CrossAttention,
    ];

    fn reads_image(self) -> bool {
        self != Fusion::TextOnly
    }

    fn reads_text(self) -> bool {
        self != Fusion::ImageOnly
    }
}

/// How captions are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoder {
    /// Token embeddings, averaged over the caption.
    Bag,
    /// A transformer encoder over the caption, its states averaged.
    Transformer,
}

crate::params::named!(TextEncoder, "text_encoder", TextEncoder::Bag => "bag", TextEncoder::Transformer => "transformer");

/// Where an example's parts lie in its packed row: `[image present (0|1), text present (0|1),
/// channels x side x side image bytes, text_len token ids (right-padded)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub channels: i64,
    pub side: i64,
    pub text_len: i64,
}

impl Layout {
    pub const FLAGS: i64 = 2;

    pub fn pixels(&self) -> i64 {
        self.channels * self.side * self.side
    }

    pub fn width(&self) -> i64 {
        Layout::FLAGS + self.pixels() + self.text_len
    }
}

/// Everything that sizes the network.
#[derive(Debug, Clone)]
pub struct Spec {
    pub layout: Layout,
    pub fusion: Fusion,
    pub image_encoder: Arch,
    pub width: i64,
    pub text_encoder: TextEncoder,
    pub vocab: i64,
    pub dim: i64,
    pub heads: i64,
    pub text_layers: i64,
    pub classes: i64,
    pub dropout: f64,
    /// Per-channel mean and standard deviation of the training images in [0, 1].
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// The image side: the trunk, and a projection of its channels to `dim`.
#[derive(Debug)]
struct ImageSide {
    trunk: Box<dyn Trunk>,
    project: nn::Linear,
    mean: Tensor,
    std: Tensor,
}

/// The text side: the encoder, and a projection of its states to the fused width.
#[derive(Debug)]
struct TextSide {
    encoder: TextStates,
    project: nn::Linear,
}

#[derive(Debug)]
enum TextStates {
    Bag(nn::Embedding),
    Transformer(Box<Encoder>),
}

/// The layers of each fusion after the encoders.
#[derive(Debug)]
enum Fuse {
    /// image_only, text_only: a head over the one modality's projected features.
    Single(nn::Linear),
    Late {
        image: nn::Linear,
        text: nn::Linear,
    },
    Concat {
        hidden: nn::Linear,
        head: nn::Linear,
    },
    Gated {
        image: nn::Linear,
        text: nn::Linear,
        gate: nn::Linear,
        head: nn::Linear,
    },
    Film {
        film: nn::Linear,
        head: nn::Linear,
    },
    CrossAttention {
        summary: Tensor,
        block: Box<Block>,
        norm: nn::LayerNorm,
        head: nn::Linear,
    },
}

#[derive(Debug)]
pub struct MultimodalNet {
    layout: Layout,
    fusion: Fusion,
    dropout: f64,
    image: Option<ImageSide>,
    text: Option<TextSide>,
    fuse: Fuse,
}

/// One batch unpacked and encoded.
struct Encoded {
    /// [B, 1] each: 1 where the modality is present.
    has_image: Tensor,
    has_text: Tensor,
    /// The trunk's feature map [B, C, h, w] (images normalised), when the fusion reads images.
    map: Option<Tensor>,
    /// Token states [B, L, dim] and which are real tokens [B, L], when the fusion reads text.
    tokens: Option<(Tensor, Tensor)>,
}

impl MultimodalNet {
    /// Builds the variables under `path`; they draw from libtorch's global generator, so
    /// `tch::manual_seed` before this fixes them.
    pub fn new(path: &nn::Path, spec: &Spec) -> Result<MultimodalNet, String> {
        let (d, classes) = (spec.dim, spec.classes);
        if d < 1 {
            return Err(format!("dim: expected an integer >= 1, got {d}"));
        }
        let linear =
            |name: &str, inputs: i64, outputs: i64| nn::linear(path / name, inputs, outputs, Default::default());
        let image = if spec.fusion.reads_image() {
            let model = ModelSpec {
                arch: spec.image_encoder,
                width: spec.width,
                in_channels: spec.layout.channels,
                image_size: spec.layout.side,
                classes,
                dropout: 0.0,
            };
            let trunk = models::trunk(&(path / "image"), &model).map_err(|e| format!("image_encoder: {e}"))?;
            let c = spec.layout.channels;
            let project = linear("image_project", trunk.channels(), d);
            Some(ImageSide {
                trunk,
                project,
                mean: Tensor::from_slice(&spec.mean).to_kind(Kind::Float).view([1, c, 1, 1]).to_device(path.device()),
                std: Tensor::from_slice(&spec.std).to_kind(Kind::Float).view([1, c, 1, 1]).to_device(path.device()),
            })
        } else {
            None
        };
        let text = if spec.fusion.reads_text() {
            let encoder = match spec.text_encoder {
                // Small, as the transformer's embeddings are: libtorch's N(0, 1) would take an
                // optimizer's steps of size lr a long way to move.
                TextEncoder::Bag => TextStates::Bag(nn::embedding(
                    path / "text" / "tokens",
                    spec.vocab,
                    d,
                    nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 }, ..Default::default() },
                )),
                TextEncoder::Transformer => TextStates::Transformer(Box::new(
                    Encoder::new(
                        &(path / "text"),
                        &TransformerSpec {
                            form: transformer::Form::EncoderDecoder,
                            vocab: spec.vocab,
                            d_model: d,
                            heads: spec.heads,
                            layers: spec.text_layers,
                            ff: 4 * d,
                            max_len: spec.layout.text_len.max(2),
                            positions: Positions::Learned,
                            dropout: spec.dropout,
                        },
                    )
                    .map_err(|e| format!("text_encoder: {e}"))?,
                )),
            };
            Some(TextSide { encoder, project: linear("text_project", d, d) })
        } else {
            None
        };
        let image_channels = image.as_ref().map_or(0, |i| i.trunk.channels());
        let fuse = match spec.fusion {
            Fusion::ImageOnly | Fusion::TextOnly => Fuse::Single(linear("head", d, classes)),
            Fusion::Late => {
                Fuse::Late { image: linear("image_head", d, classes), text: linear("text_head", d, classes) }
            }
            Fusion::Concat => Fuse::Concat { hidden: linear("hidden", 2 * d, d), head: linear("head", d, classes) },
            Fusion::Gated => Fuse::Gated {
                image: linear("gated_image", d, d),
                text: linear("gated_text", d, d),
                gate: linear("gate", 2 * d, d),
                head: linear("head", d, classes),
            },
            Fusion::Film => {
                Fuse::Film { film: linear("film", d, 2 * image_channels), head: linear("head", d, classes) }
            }
            Fusion::CrossAttention => {
                if d % spec.heads != 0 {
                    return Err(format!("dim: expected a multiple of heads = {}, got {d}", spec.heads));
                }
                Fuse::CrossAttention {
                    summary: path.var("summary", &[1, 1, d], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
                    block: Box::new(Block::new(&(path / "cross"), d, spec.heads, 4 * d, spec.dropout, true)),
                    norm: nn::layer_norm(path / "cross_norm", vec![d], Default::default()),
                    head: linear("head", d, classes),
                }
            }
        };
        Ok(MultimodalNet { layout: spec.layout, fusion: spec.fusion, dropout: spec.dropout, image, text, fuse })
    }

    pub fn fusion(&self) -> Fusion {
        self.fusion
    }

    /// Splits packed rows into their parts and runs the encoders the fusion reads.
    fn encode(&self, x: &Tensor, train: bool) -> Encoded {
        let l = self.layout;
        let b = x.size()[0];
        let has_image = x.narrow(1, 0, 1).to_kind(Kind::Float);
        let has_text = x.narrow(1, 1, 1).to_kind(Kind::Float);
        let map = self.image.as_ref().map(|side| {
            let pixels = x.narrow(1, Layout::FLAGS, l.pixels()).view([b, l.channels, l.side, l.side]);
            let images = (pixels.to_kind(Kind::Float) / 255.0 - &side.mean) / &side.std;
            side.trunk.feature_map(&images, train)
        });
        let tokens = self.text.as_ref().map(|side| {
            let ids = x.narrow(1, Layout::FLAGS + l.pixels(), l.text_len);
            let ok = ids.ne(tokens::PAD);
            let states = match &side.encoder {
                TextStates::Bag(table) => ids.apply(table),
                TextStates::Transformer(encoder) => encoder.encode(&ids, train).states,
            };
            (states, ok)
        });
        Encoded { has_image, has_text, map, tokens }
    }

    /// The image's pooled features projected to `dim`, zero where the image is absent.
    fn image_vector(&self, e: &Encoded, map: &Tensor) -> Tensor {
        let side = self.image.as_ref().expect("the fusion reads images");
        side.trunk.pool(map).apply(&side.project) * &e.has_image
    }

    /// The mean of the caption's token states projected to `dim`, zero for an empty caption.
    fn text_vector(&self, e: &Encoded) -> Tensor {
        let side = self.text.as_ref().expect("the fusion reads text");
        let (states, ok) = e.tokens.as_ref().expect("the fusion reads text");
        let weight = ok.to_kind(states.kind()).unsqueeze(-1);
        let mean =
            (states * &weight).sum_dim_intlist(1, false, None) / weight.sum_dim_intlist(1, false, None).clamp_min(1.0);
        mean.apply(&side.project) * &e.has_text
    }

    fn head(&self, head: &nn::Linear, h: &Tensor, train: bool) -> Tensor {
        h.dropout(self.dropout, train).apply(head)
    }
}

impl ModuleT for MultimodalNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let e = self.encode(x, train);
        let image = || self.image_vector(&e, e.map.as_ref().expect("the fusion reads images"));
        match &self.fuse {
            Fuse::Single(head) => {
                let h = if self.fusion == Fusion::ImageOnly { image() } else { self.text_vector(&e) };
                self.head(head, &h.relu(), train)
            }
            Fuse::Late { image: image_head, text: text_head } => {
                let li = self.head(image_head, &image().relu(), train) * &e.has_image;
                let lt = self.head(text_head, &self.text_vector(&e).relu(), train) * &e.has_text;
                (li + lt) / (&e.has_image + &e.has_text).clamp_min(1.0)
            }
            Fuse::Concat { hidden, head } => {
                let both = Tensor::cat(&[image().relu(), self.text_vector(&e).relu()], 1);
                self.head(head, &both.apply(hidden).relu(), train)
            }
            Fuse::Gated { image: wi, text: wt, gate, head } => {
                let (iv, tv) = (image(), self.text_vector(&e));
                let z = Tensor::cat(&[&iv, &tv], 1).apply(gate).sigmoid();
                let h = &z * iv.apply(wi).tanh() + (1.0 - &z) * tv.apply(wt).tanh();
                self.head(head, &h, train)
            }
            Fuse::Film { film, head } => {
                let map = e.map.as_ref().expect("film reads images");
                let c = map.size()[1];
                let params = self.text_vector(&e).apply(film) * &e.has_text;
                let gamma = params.narrow(1, 0, c).view([-1, c, 1, 1]);
                let beta = params.narrow(1, c, c).view([-1, c, 1, 1]);
                let modulated = (map * (gamma + 1.0) + beta).relu();
                self.head(head, &self.image_vector(&e, &modulated).relu(), train)
            }
            Fuse::CrossAttention { summary, block, norm, head } => {
                let map = e.map.as_ref().expect("cross-attention reads images");
                let side = self.image.as_ref().expect("cross-attention reads images");
                // Patches [B, h*w, dim]; an absent image's patches are all zero.
                let patches = map.flatten(2, -1).transpose(1, 2).apply(&side.project) * e.has_image.unsqueeze(-1);
                let (states, ok) = e.tokens.as_ref().expect("cross-attention reads text");
                let b = states.size()[0];
                let queries =
                    Tensor::cat(&[summary.expand([b, 1, -1], false).to_kind(states.kind()), states.shallow_clone()], 1);
                let ok = Tensor::cat(&[Tensor::ones([b, 1], (Kind::Bool, ok.device())), ok.shallow_clone()], 1);
                let allowed = self_mask(&ok, ok.size()[1], 0, false);
                let every_patch = Tensor::ones([b, 1, 1, patches.size()[1]], (Kind::Bool, ok.device()));
                let source = Source { states: &patches, allowed: &every_patch };
                let out = block.forward(&queries, &allowed, Some(&source), None, train);
                self.head(head, &out.select(1, 0).apply(norm), train)
            }
        }
    }
}
