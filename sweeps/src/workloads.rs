//! The catalogue of built-in workloads and their parameters, with every default named here.
//!
//! Trials carry fully resolved parameters, so a default changed in a later release never changes
//! what an old trial meant, and the Parquet records the value that actually ran.

use serde_json::{json, Value};

/// The workload that runs a user's program per trial.
pub const COMMAND: &str = "command";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Str,
    Table,
    /// A name, or a table with the name and its settings (`schedule = "cosine"` or `{ name = "step", ... }`).
    StrOrTable,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean",
            Kind::Str => "a string",
            Kind::Table => "a table",
            Kind::StrOrTable => "a string or a table",
        }
    }

    pub fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Int => v.is_i64() || v.is_u64(),
            Kind::Float => v.is_number(),
            Kind::Bool => v.is_boolean(),
            Kind::Str => v.is_string(),
            Kind::Table => v.is_object(),
            Kind::StrOrTable => v.is_string() || v.is_object(),
        }
    }
}

/// The values a parameter takes beyond its type: what `sweep validate` checks for every value of
/// every grid, random draw and fixed parameter, and what a trial checks again before it trains, so
/// a trial never fails for a value the sweep file already showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Domain {
    /// Any value of the parameter's kind.
    Any,
    /// One of these names; for a table (`optimizer`, `schedule`), its `name`.
    OneOf(&'static [&'static str]),
    /// A number >= this.
    AtLeast(f64),
    /// A number > this.
    Above(f64),
    /// A number in [lo, hi).
    HalfOpen(f64, f64),
    /// A number in [lo, hi].
    Closed(f64, f64),
}

impl Domain {
    /// What a value must be, for messages: `one of "ce", "focal"`, `a number in [0, 1)`.
    pub fn describe(self, kind: Kind) -> String {
        let number = if kind == Kind::Int { "an integer" } else { "a number" };
        match self {
            Domain::Any => kind.describe().to_string(),
            Domain::OneOf(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
                let what = if kind == Kind::Str { "one of" } else { "name = one of" };
                format!("{what} {}", names.join(", "))
            }
            Domain::AtLeast(min) => format!("{number} >= {min}"),
            Domain::Above(min) => format!("{number} > {min}"),
            Domain::HalfOpen(lo, hi) => format!("{number} in [{lo}, {hi})"),
            Domain::Closed(lo, hi) => format!("{number} in [{lo}, {hi}]"),
        }
    }

    /// Whether a value of the right kind is in the domain. A table without a `name` key, or a
    /// name that is not a string, is left to the workload's own parsing, which names the key.
    pub fn contains(self, v: &Value) -> bool {
        let number = || v.as_f64().filter(|x| x.is_finite());
        match self {
            Domain::Any => true,
            Domain::OneOf(names) => match v {
                Value::String(s) => names.contains(&s.as_str()),
                Value::Object(table) => {
                    table.get("name").and_then(Value::as_str).is_none_or(|name| names.contains(&name))
                }
                _ => false,
            },
            Domain::AtLeast(min) => number().is_some_and(|x| x >= min),
            Domain::Above(min) => number().is_some_and(|x| x > min),
            Domain::HalfOpen(lo, hi) => number().is_some_and(|x| lo <= x && x < hi),
            Domain::Closed(lo, hi) => number().is_some_and(|x| lo <= x && x <= hi),
        }
    }
}

pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn() -> Value,
    pub help: &'static str,
    pub domain: Domain,
}

impl Param {
    /// The value's type and domain; the error reads after "expected": `an integer >= 1, got 0`.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        if !self.kind.accepts(v) {
            return Err(format!("{} ({}), got {v}", self.kind.describe(), self.help));
        }
        if !self.domain.contains(v) {
            return Err(format!("{}, got {v}", self.domain.describe(self.kind)));
        }
        Ok(())
    }
}

pub struct Workload {
    pub name: &'static str,
    pub help: &'static str,
    pub params: &'static [Param],
    /// The metrics it reports each epoch, for `[search] metric` (none for a workload that trains in
    /// one pass); a name ending in `/` stands for a family
    /// (`class_acc/` for `class_acc/0`, `class_acc/1`, ...).
    pub metrics: &'static [&'static str],
}

/// Whether `w` reports `metric`.
pub fn reports(w: &Workload, metric: &str) -> bool {
    w.metrics.iter().any(|m| match m.strip_suffix('/') {
        Some(family) => {
            metric.strip_prefix(family).and_then(|rest| rest.strip_prefix('/')).is_some_and(|k| !k.is_empty())
        }
        None => *m == metric,
    })
}

/// What every workload that trains in epochs reports about the epoch itself.
const EPOCH_METRICS: [&str; 3] = ["lr", "epoch_seconds", "samples_per_second"];

/// The error metrics of the double-descent objective (mlp and double_descent).
const ERROR_METRICS: &[&str] = &[
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "interpolated",
    EPOCH_METRICS[0],
    EPOCH_METRICS[1],
    EPOCH_METRICS[2],
];

impl Workload {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Every parameter at its default: what a trial resolves before the sweep file's values.
    pub fn defaults(&self) -> serde_json::Map<String, Value> {
        self.params.iter().map(|p| (p.name.to_string(), (p.default)())).collect()
    }

    /// A trial's resolved parameters against the catalogue: no unknown key, none missing, each
    /// value of its kind and domain. The message names the key: `params.width: expected an
    /// integer >= 1, got 0`. The coordinator runs it on every submitted trial, the workload again
    /// before training.
    pub fn check_resolved(&self, params: &serde_json::Map<String, Value>) -> Result<(), String> {
        for (key, value) in params {
            let Some(param) = self.param(key) else {
                let known: Vec<_> = self.params.iter().map(|p| p.name).collect();
                return Err(format!(
                    "params.{key}: not a parameter of workload `{}`; expected one of {}",
                    self.name,
                    known.join(", ")
                ));
            };
            param.check(value).map_err(|problem| format!("params.{key}: expected {problem}"))?;
        }
        if let Some(missing) = self.params.iter().find(|p| !params.contains_key(p.name)) {
            return Err(format!("params.{}: missing; a trial must carry every parameter resolved", missing.name));
        }
        Ok(())
    }
}

macro_rules! param {
    ($name:literal, $kind:ident, $default:tt, $help:literal) => {
        param!($name, $kind, $default, $help, Any)
    };
    ($name:literal, $kind:ident, $default:tt, $help:literal, $domain:ident $(($($arg:expr),*))?) => {
        Param { name: $name, kind: Kind::$kind, default: || json!($default), help: $help, domain: Domain::$domain $(($($arg),*))? }
    };
}

/// The optimizer table; its default differs per workload, its keys do not.
macro_rules! optimizer {
    ($default:tt) => {
        param!(
            "optimizer",
            Table,
            $default,
            "{ name = \"sgd\" | \"adam\" | \"adamw\" | \"adagrad\" | \"adafactor\" | \"shampoo\", lr, grad_clip, and the named optimizer's settings (README, \"Optimizers\") }",
            OneOf(&["sgd", "adam", "adamw", "adagrad", "adafactor", "shampoo"])
        )
    };
}

/// The learning-rate schedule; its default differs per workload.
macro_rules! schedule {
    ($default:tt) => {
        param!(
            "schedule",
            StrOrTable,
            $default,
            "\"constant\" | \"cosine\" | { name = \"step\", every_epochs, gamma, warmup_epochs }",
            OneOf(&["constant", "cosine", "step"])
        )
    };
}

/// Parameters that mean the same, with the same default, in every workload that trains on batches
/// of images.
const BATCH_SIZE: Param = param!("batch_size", Int, 128, "mini-batch size", AtLeast(1.0));
const AUGMENT: Param = param!("augment", Bool, true, "random crop (4 px padding) and horizontal flip");
/// The same switch, off by default: for digits, where a flip changes the class.
const AUGMENT_OFF: Param = param!("augment", Bool, false, "random crop (4 px padding) and horizontal flip");
const EVAL_EVERY: Param = param!("eval_every", Int, 1, "evaluate and report every this many epochs", AtLeast(1.0));
const PRECISION: Param = param!(
    "precision",
    Str,
    "auto",
    "auto (bf16 autocast on CUDA, fp32 on the CPU) | fp32 | bf16",
    OneOf(&["auto", "fp32", "bf16"])
);

pub static MLP: Workload = Workload {
    name: "mlp",
    help: "an MLP classifier trained with libtorch on a seeded synthetic noisy classification set",
    params: &[
        param!("width", Int, 64, "hidden units per layer", AtLeast(1.0)),
        param!("depth", Int, 1, "hidden layers", AtLeast(1.0)),
        param!(
            "hidden_trainable",
            Bool,
            true,
            "false: random features, only the output layer is fitted by minimum-norm least squares"
        ),
        param!("n", Int, 1000, "training points", AtLeast(1.0)),
        param!("n_test", Int, 2000, "test points (labels never noisy)", AtLeast(1.0)),
        param!("dim", Int, 32, "input dimension", AtLeast(1.0)),
        param!("classes", Int, 4, "number of classes", AtLeast(2.0)),
        param!(
            "label_noise",
            Float,
            0.1,
            "fraction of training labels replaced by a different class",
            Closed(0.0, 1.0)
        ),
        param!("epochs", Int, 20, "training epochs (random features: one closed-form fit)", AtLeast(1.0)),
        BATCH_SIZE,
        param!("optimizer", Table, {"name": "adam", "lr": 1e-3}, "{ name = \"adam\" | \"sgd\", lr, momentum }", OneOf(&["adam", "sgd"])),
        param!("weight_decay", Float, 0.0, "L2 penalty; the ridge coefficient for random features", AtLeast(0.0)),
        param!("seed", Int, 0, "seeds the data, the label noise and the initialisation", AtLeast(0.0)),
    ],
    metrics: ERROR_METRICS,
};

pub static DOUBLE_DESCENT: Workload = Workload {
    name: "double_descent",
    help: "image classifiers of a given width trained with label noise (Nakkiran et al. 2019), on CIFAR-10/100, image folders or .npy arrays",
    params: &[
        param!("model", Str, "preact_resnet18", "preact_resnet18 | cnn5 | mlp | random_features", OneOf(&["preact_resnet18", "cnn5", "mlp", "random_features"])),
        param!("width", Int, 64, "k: the network's widths are [k, 2k, 4k, 8k]; hidden units for mlp; features for random_features", AtLeast(1.0)),
        param!("label_noise", Float, 0.15, "fraction of training labels replaced by a different class, fixed per seed", HalfOpen(0.0, 1.0)),
        param!("weight_decay", Float, 0.0, "L2 penalty (decoupled for adamw); the ridge coefficient for random_features", AtLeast(0.0)),
        param!("dropout", Float, 0.0, "dropout before the classifier", HalfOpen(0.0, 1.0)),
        AUGMENT,
        param!("epochs", Int, 200, "training epochs", AtLeast(1.0)),
        BATCH_SIZE,
        optimizer!({"name": "adam", "lr": 1e-4}),
        schedule!("constant"),
        param!("n_train", Int, 0, "use the first n_train training images (0: all); n sets the interpolation threshold", AtLeast(0.0)),
        EVAL_EVERY,
        PRECISION,
        param!("seed", Int, 0, "seeds initialisation, data order, augmentation, dropout and label noise", AtLeast(0.0)),
    ],
    metrics: ERROR_METRICS,
};

pub static LONG_TAIL: Workload = Workload {
    name: "long_tail",
    help: "long-tailed classification (CIFAR-LT, ImageNet-LT): re-weighted and margin losses, re-sampling and classifier retraining, scored on many/medium/few-shot classes",
    params: &[
        param!("model", Str, "resnet32", "resnet32 (CIFAR) | resnet10 | resnext50 (ImageNet-LT) | mlp | linear", OneOf(&["resnet32", "resnet10", "resnext50", "mlp", "linear"])),
        param!("hidden", Int, 256, "hidden units of the mlp model", AtLeast(1.0)),
        param!("loss", Str, "ce", "ce | focal | cb_ce | cb_focal | ldam_drw | balanced_softmax | logit_adjust", OneOf(&["ce", "focal", "cb_ce", "cb_focal", "ldam_drw", "balanced_softmax", "logit_adjust"])),
        param!("focal_gamma", Float, 1.0, "gamma of focal and cb_focal", AtLeast(0.0)),
        param!("cb_beta", Float, 0.9999, "beta of the effective number of samples: class-balanced weights of cb_ce, cb_focal and the DRW stage", HalfOpen(0.0, 1.0)),
        param!("ldam_max_margin", Float, 0.5, "largest LDAM margin (the rarest class's)", AtLeast(0.0)),
        param!("ldam_scale", Float, 30.0, "logit scale s of LDAM on its cosine classifier", Above(0.0)),
        param!("drw_epoch", Int, 160, "ldam_drw: epoch (from 0) from which the loss is re-weighted", AtLeast(0.0)),
        param!("logit_adjust_tau", Float, 1.0, "tau of the logit-adjusted loss", AtLeast(0.0)),
        param!("sampler", Str, "instance", "instance | class_balanced | sqrt", OneOf(&["instance", "class_balanced", "sqrt"])),
        param!("posthoc_tau", Float, 0.0, "post-hoc logit adjustment at evaluation: logits - tau * log prior (0 = off)", AtLeast(0.0)),
        param!("tau_norm", Float, 0.0, "tau-normalised classifier at evaluation: w_c / |w_c|^tau, no bias (0 = off)", AtLeast(0.0)),
        param!("crt_epochs", Int, 0, "classifier re-training (cRT): epochs of a second stage on frozen features with class-balanced sampling (0 = off)", AtLeast(0.0)),
        param!("weight_decay", Float, 2e-4, "L2 penalty (decoupled for adamw)", AtLeast(0.0)),
        AUGMENT,
        param!("epochs", Int, 200, "training epochs of the first stage", AtLeast(1.0)),
        BATCH_SIZE,
        optimizer!({"name": "sgd", "lr": 0.1, "momentum": 0.9}),
        schedule!("cosine"),
        EVAL_EVERY,
        PRECISION,
        param!("seed", Int, 0, "seeds initialisation, sampling order and augmentation", AtLeast(0.0)),
    ],
    metrics: &[
        "test_acc",
        "test_acc_many",
        "test_acc_medium",
        "test_acc_few",
        "test_acc_balanced",
        "test_loss",
        "class_acc/",
        "stage",
        EPOCH_METRICS[0],
        EPOCH_METRICS[1],
        EPOCH_METRICS[2],
    ],
};

pub static XMC_TREE: Workload = Workload {
    name: "xmc_tree",
    help: "a label tree for extreme multi-label classification (Parabel/PECOS style) on XC-format BoW files: PIFA label embeddings, a recursive partitioner, linear classifiers per node, beam search",
    params: &[
        param!("partitioner", Str, "kmeans_balanced", "kmeans_balanced | kmeans | random | metis: how each node's labels are split among its children", OneOf(&["kmeans_balanced", "kmeans", "random", "metis"])),
        param!("branching", Int, 2, "children per internal node", AtLeast(2.0)),
        param!("max_leaf", Int, 100, "a node with at most this many labels is a leaf", AtLeast(1.0)),
        param!("depth", Int, 20, "deepest level of internal nodes; a node at this depth is a leaf whatever its size", AtLeast(1.0)),
        param!("label_graph", Str, "cooccurrence", "metis only: cooccurrence (labels sharing training points) | knn (nearest labels by PIFA cosine)", OneOf(&["cooccurrence", "knn"])),
        param!("knn", Int, 10, "metis with label_graph = knn: neighbours per label", AtLeast(1.0)),
        param!("cluster_iters", Int, 20, "k-means iterations at most per split", AtLeast(1.0)),
        param!("cluster_eps", Float, 1e-4, "k-means stops when the mean similarity to the centroids improves by less than this", AtLeast(0.0)),
        param!("loss", Str, "squared_hinge", "squared_hinge | logistic: the loss of every node classifier", OneOf(&["squared_hinge", "logistic"])),
        param!("c", Float, 1.0, "inverse L2 strength of the node classifiers", Above(0.0)),
        param!("max_iter", Int, 20, "dual coordinate descent passes at most per classifier", AtLeast(1.0)),
        param!("eps", Float, 0.1, "dual coordinate descent stops when the projected gradient's spread is below this", Above(0.0)),
        param!("prune_threshold", Float, 0.1, "weights with magnitude below this are dropped after training", AtLeast(0.0)),
        param!("beam", Int, 10, "beam width of the tree search at inference", AtLeast(1.0)),
        param!("n_trees", Int, 3, "trees in the ensemble, each built and trained from its own seed; a label scores the mean over the trees of its path probability (0 in a tree whose beam missed it), as omikuji ranks", AtLeast(1.0)),
        param!("psp_a", Float, 0.55, "A of the Jain et al. (2016) propensity model", Above(0.0)),
        param!("psp_b", Float, 1.5, "B of the Jain et al. (2016) propensity model", Above(0.0)),
        param!("threads", Int, 0, "worker threads for tree building, training and inference (0: the share of the cores the agent gives each trial, SWEEP_CPU_THREADS; all cores outside an agent)", AtLeast(0.0)),
        param!("seed", Int, 0, "seeds the partitioners and the solver's coordinate order", AtLeast(0.0)),
    ],
    metrics: &[],
};

pub static EDGE_OF_STABILITY: Workload = Workload {
    name: "edge_of_stability",
    help: "full-batch gradient descent with the Hessian's top eigenvalues measured by Lanczos as it trains (Cohen et al. 2021), on any image set the loaders read",
    params: &[
        param!("model", Str, "mlp", "mlp (fully connected, `activation`, `depth` x `width`) | cnn5 (the 5-layer CNN of width k = `width`)", OneOf(&["mlp", "cnn5"])),
        param!("activation", Str, "tanh", "tanh | relu: the mlp's activation", OneOf(&["tanh", "relu"])),
        param!("width", Int, 200, "hidden units per mlp layer; k of cnn5", AtLeast(1.0)),
        param!("depth", Int, 2, "hidden layers of the mlp", AtLeast(1.0)),
        param!("loss", Str, "mse", "mse (half the squared error to one-hot targets, summed over classes, averaged over points) | ce (cross-entropy)", OneOf(&["mse", "ce"])),
        param!("lr", Float, 0.02, "step size eta; gradient descent is stable while the sharpness stays below 2/eta", Above(0.0)),
        param!("optimizer", Str, "gd", "gd | gd_momentum (heavy ball, `beta`) | adam (beta1 = `beta`, beta2 = 0.999, eps = 1e-8)", OneOf(&["gd", "gd_momentum", "adam"])),
        param!("beta", Float, 0.9, "momentum of gd_momentum; beta1 of adam", HalfOpen(0.0, 1.0)),
        param!("steps", Int, 1000, "full-batch steps; each is one epoch and one record", AtLeast(1.0)),
        param!("sharpness_every", Int, 10, "measure the sharpness every this many steps (and at the first and last)", AtLeast(1.0)),
        param!("eigenvalues", Int, 1, "how many of the Hessian's top eigenvalues to measure (eigenvalue/1 .. eigenvalue/k)", Closed(1.0, 5.0)),
        param!("lanczos_iters", Int, 20, "Lanczos iterations at most per measurement, each one Hessian-vector product over the training set", Closed(2.0, 500.0)),
        param!("lanczos_tol", Float, 1e-3, "stop Lanczos once every wanted eigenvalue's residual bound is below this fraction of it", Above(0.0)),
        param!("n_train", Int, 5000, "use the first n_train training images (0: all); Cohen et al. use 5,000 of CIFAR-10", AtLeast(0.0)),
        param!("chunk_size", Int, 1000, "images per forward pass; gradients and Hessian-vector products are summed over the chunks", AtLeast(1.0)),
        param!("seed", Int, 0, "seeds the initialisation and Lanczos's first start vector", AtLeast(0.0)),
    ],
    metrics: &[
        "train_loss",
        "train_acc",
        "grad_norm",
        "sharpness",
        "preconditioned_sharpness",
        "eigenvalue/",
        "two_over_lr",
        "stability_threshold",
        "sharpness_seconds",
        "lanczos_iterations",
        "diverged",
        EPOCH_METRICS[0],
        EPOCH_METRICS[1],
        EPOCH_METRICS[2],
    ],
};

pub static OPTIMIZERS: Workload = Workload {
    name: "optimizers",
    help: "first- against second-order optimizers (SGD, Adam, AdamW, Adagrad, Adafactor, Shampoo) on an ill-conditioned least-squares problem or on images, with the loss against steps and against seconds",
    params: &[
        param!("problem", Str, "least_squares", "least_squares (synthetic, `dim` inputs, `outputs` targets, `condition_number`) | logistic | mlp (`depth` x `width`, ReLU) | cnn5 (k = `width`): the image problems read the [data] section", OneOf(&["least_squares", "logistic", "mlp", "cnn5"])),
        optimizer!({"name": "sgd", "lr": 0.1}),
        param!("weight_decay", Float, 0.0, "L2 penalty (decoupled for adamw and adafactor)", AtLeast(0.0)),
        param!("batch_size", Int, 0, "points per step (0: all of them, full-batch); mini-batches follow a shuffled order per pass", AtLeast(0.0)),
        param!("steps", Int, 500, "optimizer steps; records are numbered by step (epoch = step)", AtLeast(1.0)),
        param!("record_every", Int, 10, "evaluate the full training loss and record every this many steps (and after the last)", AtLeast(1.0)),
        param!("target_loss", Float, 0.01, "training loss that counts as reached: steps_to_target and seconds_to_target are recorded at the first record at or below it", Above(0.0)),
        param!("condition_number", Float, 1000.0, "least squares: largest over smallest eigenvalue of the inputs' covariance, which is the Hessian's", AtLeast(1.0)),
        param!("dim", Int, 32, "least squares: input dimensions", AtLeast(1.0)),
        param!("outputs", Int, 32, "least squares: targets per point (the weight is outputs x dim)", AtLeast(1.0)),
        param!("width", Int, 16, "hidden units per mlp layer; k of cnn5", AtLeast(1.0)),
        param!("depth", Int, 2, "hidden layers of the mlp", AtLeast(1.0)),
        param!("points", Int, 1000, "least squares: points made", AtLeast(1.0)),
        param!("n_train", Int, 0, "image problems: the first n_train training images (0: all)", AtLeast(0.0)),
        param!("seed", Int, 0, "seeds the problem (least squares), the initialisation and the mini-batch order", AtLeast(0.0)),
    ],
    metrics: &[
        "train_loss",
        "train_acc",
        "batch_loss",
        "seconds",
        "step_seconds",
        "steps_to_target",
        "seconds_to_target",
        "optimizer_state_bytes",
        "diverged",
        EPOCH_METRICS[0],
    ],
};

pub static SPARSITY: Workload = Workload {
    name: "sparsity",
    help: "how far an image classifier thins before accuracy falls: magnitude, random and structured pruning and L1 regularisation, one-shot, gradual or iterative with rewinding (lottery tickets), and int8 quantisation, against the dense network",
    params: &[
        param!("model", Str, "lenet300_100", "lenet300_100 (784-300-100-10 fully connected, Han et al.) | cnn5 | preact_resnet18 (k = `width`)", OneOf(&["lenet300_100", "cnn5", "preact_resnet18"])),
        param!("width", Int, 16, "k of cnn5 and preact_resnet18: their widths are [k, 2k, 4k, 8k]", AtLeast(1.0)),
        param!("method", Str, "magnitude", "which weights go: dense (none) | magnitude (smallest |w|) | random | structured (whole hidden neurons, smallest L1 norm of incoming weights; lenet300_100 only) | l1 (an L1 penalty `l1` in the loss, then magnitude)", OneOf(&["dense", "magnitude", "random", "structured", "l1"])),
        param!("scope", Str, "global", "magnitude and l1: global (one threshold over every layer) | layer (each layer to the same sparsity)", OneOf(&["global", "layer"])),
        param!("pruning", Str, "one_shot", "when they go: one_shot (all at the start of epoch `end`, then fine-tuning) | gradual (Zhu & Gupta's cubic schedule, at the start of each epoch from `begin` to `end`) | iterative (lottery tickets: `rounds` rounds of `epochs` epochs, each pruning more and restarting from the weights of epoch `rewind_epoch` with a fresh optimizer)", OneOf(&["one_shot", "gradual", "iterative"])),
        param!("final_sparsity", Float, 0.9, "fraction of the prunable weights (every weight matrix and convolution kernel; not biases or BatchNorm) that is zero at the end; structured: fraction of each hidden layer's neurons", HalfOpen(0.0, 1.0)),
        param!("begin", Int, 2, "gradual: the epoch (from 0) whose start prunes first", AtLeast(0.0)),
        param!("end", Int, 12, "the epoch (from 0) whose start brings the network to final_sparsity; the epochs after it fine-tune; must be below `epochs`", AtLeast(0.0)),
        param!("l1", Float, 1e-4, "l1: coefficient of the L1 penalty on the prunable weights, in the loss until `end` (iterative: throughout)", AtLeast(0.0)),
        param!("rounds", Int, 3, "iterative: rounds of `epochs` epochs each; round r (from 0) trains at sparsity 1 - (1 - final_sparsity)^(r / (rounds - 1)), from the rewound weights with a fresh optimizer", AtLeast(2.0)),
        param!("rewind_epoch", Int, 0, "iterative: the epoch of the first round whose starting weights every later round starts from (0: the initialisation)", AtLeast(0.0)),
        param!("quantize", Bool, false, "also evaluate the network with int8 weights (per-channel symmetric, post-training) and report test_acc_int8", Any),
        param!("inference_batch", Int, 256, "lenet300_100: test images in the batch whose forward pass is timed dense, sparse (CSR) and as the network with its removed neurons cut out", AtLeast(1.0)),
        param!("epochs", Int, 20, "training epochs (iterative: per round)", AtLeast(1.0)),
        BATCH_SIZE,
        AUGMENT_OFF,
        optimizer!({"name": "adam", "lr": 1.2e-3}),
        schedule!("constant"),
        param!("weight_decay", Float, 0.0, "L2 penalty (decoupled for adamw)", AtLeast(0.0)),
        param!("n_train", Int, 0, "use the first n_train training images (0: all)", AtLeast(0.0)),
        EVAL_EVERY,
        param!("seed", Int, 0, "seeds initialisation, data order, augmentation and random pruning", AtLeast(0.0)),
    ],
    metrics: &[
        "train_loss",
        "train_error",
        "train_acc",
        "test_loss",
        "test_error",
        "test_acc",
        "test_acc_int8",
        "sparsity",
        "sparsity/",
        "nonzeros",
        "model_bytes_dense",
        "model_bytes_sparse",
        "model_bytes_int8",
        "model_bytes_sparse_int8",
        "inference_ms_dense",
        "inference_ms_sparse",
        "inference_ms_smaller",
        EPOCH_METRICS[0],
        EPOCH_METRICS[1],
        EPOCH_METRICS[2],
    ],
};

pub static SEQ2SEQ: Workload = Workload {
    name: "seq2seq",
    help: "a transformer (encoder-decoder or decoder-only) learning sequence-to-sequence tasks from the `sequences` text format or chess games in PGN, with legal-move metrics for chess",
    params: &[
        param!("form", Str, "decoder_only", "decoder_only (one causal stack over `source <sep> target`) | encoder_decoder (an encoder over the source, a decoder attending to it)", OneOf(&["decoder_only", "encoder_decoder"])),
        param!("d_model", Int, 64, "width of the residual stream; a multiple of `heads`", AtLeast(1.0)),
        param!("heads", Int, 4, "attention heads per layer", AtLeast(1.0)),
        param!("layers", Int, 2, "blocks in the decoder, and in the encoder of encoder_decoder", AtLeast(1.0)),
        param!("ff", Int, 0, "width of the feed-forward layers (0: 4 x d_model)", AtLeast(0.0)),
        param!("max_len", Int, 128, "the longest row, in tokens (decoder_only: source, separator and target together); longer examples lose the start of their source, then the end of their target", AtLeast(4.0)),
        param!("positions", Str, "learned", "learned | sinusoidal position embeddings", OneOf(&["learned", "sinusoidal"])),
        param!("dropout", Float, 0.0, "dropout on embeddings, attention weights and each block's output", HalfOpen(0.0, 1.0)),
        param!("vocab_size", Int, 8000, "sequences: the largest vocabulary, special tokens included; rarer tokens of the training split read as <unk> (pgn: every UCI move, fixed)", AtLeast(6.0)),
        param!("eval_positions", Int, 256, "pgn: held-out positions whose next move the model predicts for legal_move_rate and next_move_acc", AtLeast(1.0)),
        param!("continue_plies", Int, 20, "pgn: plies generated from each held-out position for plies_until_illegal", AtLeast(1.0)),
        param!("voices", Int, 0, "sequences whose target interleaves this many voices (token i belongs to voice i mod voices): also report voice_acc/<v> (0: off)", AtLeast(0.0)),
        param!("epochs", Int, 10, "training epochs", AtLeast(1.0)),
        param!("batch_size", Int, 32, "sequences per mini-batch", AtLeast(1.0)),
        optimizer!({"name": "adamw", "lr": 1e-3}),
        schedule!("constant"),
        param!("weight_decay", Float, 0.0, "L2 penalty (decoupled for adamw)", AtLeast(0.0)),
        param!("n_train", Int, 0, "use the first n_train training examples (0: all)", AtLeast(0.0)),
        EVAL_EVERY,
        PRECISION,
        param!("seed", Int, 0, "seeds initialisation, data order, dropout and where single sequences are cut into source and target", AtLeast(0.0)),
    ],
    metrics: &[
        "train_loss",
        "val_loss",
        "val_perplexity",
        "val_token_acc",
        "voice_acc/",
        "legal_move_rate",
        "next_move_acc",
        "plies_until_illegal",
        "parameters",
        EPOCH_METRICS[0],
        EPOCH_METRICS[1],
        EPOCH_METRICS[2],
    ],
};

pub static MULTIMODAL: Workload = Workload {
    name: "multimodal",
    help: "classification from images and captions together (CUB-200-2011 with text_c10, format `cub`): an image encoder, a text encoder and a fusion, scored per class and with each modality removed at test time",
    params: &[
        param!("fusion", Str, "concat", "image_only | text_only | late (averaged logits) | concat | gated (gated multimodal unit) | film (the caption scales and shifts the image features) | cross_attention (caption tokens attend to image patches)", OneOf(&["image_only", "text_only", "late", "concat", "gated", "film", "cross_attention"])),
        param!("image_encoder", Str, "cnn5", "cnn5 | preact_resnet18: the network of `models` whose feature map encodes the image", OneOf(&["cnn5", "preact_resnet18"])),
        param!("width", Int, 16, "k of the image encoder: [k, 2k, 4k, 8k] channels", AtLeast(1.0)),
        param!("text_encoder", Str, "bag", "bag (token embeddings averaged) | transformer (an encoder over the caption, its states averaged)", OneOf(&["bag", "transformer"])),
        param!("dim", Int, 64, "width of the token embeddings and of the fused features; a multiple of `heads` for transformer and cross_attention", AtLeast(1.0)),
        param!("heads", Int, 4, "attention heads of the text transformer and of cross_attention", AtLeast(1.0)),
        param!("text_layers", Int, 1, "blocks of the text transformer", AtLeast(1.0)),
        param!("text_len", Int, 32, "tokens of a caption read; longer ones lose their end", AtLeast(1.0)),
        param!("vocab_size", Int, 5000, "the largest vocabulary, special tokens included; rarer words of the training captions read as <unk>", AtLeast(6.0)),
        param!("modality_dropout", Float, 0.0, "probability that a training example loses its image, and again that it loses its caption (never both)", Closed(0.0, 0.5)),
        param!("dropout", Float, 0.0, "dropout before the classifier, and in the text transformer and cross-attention", HalfOpen(0.0, 1.0)),
        param!("epochs", Int, 10, "training epochs", AtLeast(1.0)),
        param!("batch_size", Int, 64, "examples per mini-batch", AtLeast(1.0)),
        optimizer!({"name": "adamw", "lr": 1e-3}),
        schedule!("constant"),
        param!("weight_decay", Float, 0.0, "L2 penalty (decoupled for adamw)", AtLeast(0.0)),
        param!("n_train", Int, 0, "use the first n_train training images (0: all)", AtLeast(0.0)),
        EVAL_EVERY,
        PRECISION,
        param!("seed", Int, 0, "seeds initialisation, data order, the caption each example shows and modality dropout", AtLeast(0.0)),
    ],
    metrics: &[
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "test_acc/no_image",
        "test_acc/no_text",
        "class_acc/",
        "parameters",
        EPOCH_METRICS[0],
        EPOCH_METRICS[1],
        EPOCH_METRICS[2],
    ],
};

pub static BUILT_IN: &[&Workload] =
    &[&MLP, &DOUBLE_DESCENT, &LONG_TAIL, &XMC_TREE, &EDGE_OF_STABILITY, &OPTIMIZERS, &SPARSITY, &SEQ2SEQ, &MULTIMODAL];

pub fn find(name: &str) -> Option<&'static Workload> {
    BUILT_IN.iter().copied().find(|w| w.name == name)
}

/// Every workload name a sweep file may use, for error messages.
pub fn names() -> Vec<&'static str> {
    std::iter::once(COMMAND).chain(BUILT_IN.iter().map(|w| w.name)).collect()
}
