//! Shampoo (Gupta, Koren & Singer 2018). A matrix gradient G (a tensor of higher order is viewed as
//! [first axis, the rest], as for a convolution's [out, in x kh x kw]) keeps two statistics,
//! L += G Gᵀ and R += Gᵀ G, both starting at epsilon times the identity, and steps along
//! L^(-1/4) G R^(-1/4). A vector keeps one, L += g gᵀ, and steps along L^(-1/2) g (full-matrix
//! Adagrad). A dimension longer than `block_size` is cut into blocks, each with statistics of its
//! own (Anil et al. 2020), so no preconditioner exceeds block_size².
//!
//! The inverse roots come from an eigendecomposition in f64, recomputed every
//! `precondition_every` steps from `start_preconditioning_step` on; they are state, so a run
//! resumed between two refreshes continues with the very roots it had. Before preconditioning
//! starts, and with `graft`, the step takes its size from a simpler optimizer's direction.

use super::config::{Graft, OptimizerConfig};
use tch::{Kind, Tensor};

pub(super) struct State {
    blocks: Vec<Block>,
    /// Diagonal Adagrad's sum of squared gradients, for `graft = "adagrad"`.
    graft_sum: Option<Tensor>,
    /// Heavy-ball momentum of the step direction, for `momentum > 0`.
    momentum_buffer: Option<Tensor>,
}

/// One block of the gradient's matrix view: rows `rows.0 ..` (`rows.1` of them) and, for a matrix,
/// columns likewise. A vector's block has no right side.
struct Block {
    rows: (i64, i64),
    cols: Option<(i64, i64)>,
    left: Tensor,
    left_root: Tensor,
    right: Option<(Tensor, Tensor)>,
}

/// The gradient's shape as Shampoo sees it: [n] or [rows, cols].
fn matrix_shape(var: &Tensor) -> Vec<i64> {
    let size = var.size();
    match size.len() {
        0 | 1 => vec![var.numel() as i64],
        _ => vec![size[0], size[1..].iter().product()],
    }
}

/// Cuts 0..n into consecutive spans of at most `block`.
fn spans(n: i64, block: i64) -> Vec<(i64, i64)> {
    (0..n).step_by(block as usize).map(|start| (start, block.min(n - start))).collect()
}

impl State {
    pub(super) fn new(cfg: &OptimizerConfig, var: &Tensor) -> State {
        let s = &cfg.shampoo;
        let options = (var.kind(), var.device());
        let identity = |n: i64, scale: f64| Tensor::eye(n, options) * scale;
        let shape = matrix_shape(var);
        let rows = spans(shape[0], s.block_size);
        let cols: Vec<Option<(i64, i64)>> = match shape.get(1) {
            Some(&n) => spans(n, s.block_size).into_iter().map(Some).collect(),
            None => vec![None],
        };
        let blocks = rows
            .iter()
            .flat_map(|&r| cols.iter().map(move |&c| (r, c)))
            .map(|(rows, cols)| Block {
                rows,
                cols,
                left: identity(rows.1, s.epsilon),
                left_root: identity(rows.1, 1.0),
                right: cols.map(|c| (identity(c.1, s.epsilon), identity(c.1, 1.0))),
            })
            .collect();
        State {
            blocks,
            graft_sum: (s.graft == Graft::Adagrad).then(|| var.zeros_like()),
            momentum_buffer: (cfg.momentum > 0.0).then(|| var.zeros_like()),
        }
    }

    /// Per block b: `shampoo_left.b`, `shampoo_left_root.b` and, for a matrix, `shampoo_right.b`,
    /// `shampoo_right_root.b`; then `graft_sum` and `momentum_buffer` where configured.
    pub(super) fn named(&self) -> Vec<(String, &Tensor)> {
        let mut out = Vec::new();
        for (b, block) in self.blocks.iter().enumerate() {
            out.push((format!("shampoo_left.{b}"), &block.left));
            out.push((format!("shampoo_left_root.{b}"), &block.left_root));
            if let Some((right, right_root)) = &block.right {
                out.push((format!("shampoo_right.{b}"), right));
                out.push((format!("shampoo_right_root.{b}"), right_root));
            }
        }
        out.extend(self.graft_sum.iter().map(|t| ("graft_sum".to_string(), t)));
        out.extend(self.momentum_buffer.iter().map(|t| ("momentum_buffer".to_string(), t)));
        out
    }
}

/// M^(-1/p) for a symmetric positive definite M, through its eigendecomposition in f64; an
/// eigenvalue below `floor` (rounding can push one there) counts as `floor`.
pub(super) fn inverse_root(m: &Tensor, p: f64, floor: f64) -> Tensor {
    let (values, vectors) = m.to_kind(Kind::Double).linalg_eigh("L");
    let scaled = values.clamp_min(floor).pow_tensor_scalar(-1.0 / p);
    (&vectors * scaled.unsqueeze(0)).matmul(&vectors.transpose(0, 1)).to_kind(m.kind())
}

/// One update; `step` counts this parameter's updates including this one. Weight decay is an L2
/// term added to the gradient.
pub(super) fn update(
    cfg: &OptimizerConfig,
    lr: f64,
    weight_decay: f64,
    param: &mut Tensor,
    grad: &Tensor,
    state: &mut State,
    step: u64,
) {
    let s = &cfg.shampoo;
    let g = if weight_decay != 0.0 { grad + &*param * weight_decay } else { grad.shallow_clone() };
    let matrix = g.reshape(matrix_shape(&g));
    let preconditioning = step >= s.start_preconditioning_step;
    let refresh = preconditioning && (step - s.start_preconditioning_step).is_multiple_of(s.precondition_every);
    // Statistics grow every step; the preconditioned direction is formed only once it is taken.
    let mut pieces = Vec::with_capacity(if preconditioning { state.blocks.len() } else { 0 });
    for block in &mut state.blocks {
        let piece = matrix.narrow(0, block.rows.0, block.rows.1);
        let piece = match block.cols {
            Some((start, len)) => piece.narrow(1, start, len),
            None => piece,
        };
        match &mut block.right {
            Some((right, right_root)) => {
                let _ = block.left.g_add_(&piece.matmul(&piece.tr()));
                let _ = right.g_add_(&piece.tr().matmul(&piece));
                if refresh {
                    block.left_root.copy_(&inverse_root(&block.left, 4.0, s.epsilon));
                    right_root.copy_(&inverse_root(right, 4.0, s.epsilon));
                }
                if preconditioning {
                    pieces.push(block.left_root.matmul(&piece).matmul(right_root));
                }
            }
            None => {
                let _ = block.left.g_add_(&piece.outer(&piece));
                if refresh {
                    block.left_root.copy_(&inverse_root(&block.left, 2.0, s.epsilon));
                }
                if preconditioning {
                    pieces.push(block.left_root.matmul(&piece));
                }
            }
        }
    }
    // The direction a grafted step takes its norm from, and the one taken before preconditioning.
    let simple = match &mut state.graft_sum {
        Some(sum) => {
            let _ = sum.g_add_(&(&g * &g));
            &g / (sum.sqrt() + s.epsilon)
        }
        None => g.shallow_clone(),
    };
    let mut direction = if !preconditioning {
        simple
    } else {
        let preconditioned = assemble(&state.blocks, pieces, &matrix).reshape(g.size());
        match s.graft {
            Graft::None => preconditioned,
            // Scaled on the device: nothing is read back, and a zero direction stays zero.
            _ => &preconditioned * (simple.norm() / preconditioned.norm().clamp_min(1e-30)),
        }
    };
    if let Some(buf) = &mut state.momentum_buffer {
        if step == 1 {
            buf.copy_(&direction);
        } else {
            let _ = buf.g_mul_scalar_(cfg.momentum);
            let _ = buf.g_add_(&direction);
        }
        direction = buf.shallow_clone();
    }
    let _ = param.g_sub_(&(direction * lr));
}

/// The blocks' preconditioned pieces put back in the matrix's place (row-major over the blocks).
fn assemble(blocks: &[Block], pieces: Vec<Tensor>, like: &Tensor) -> Tensor {
    if pieces.len() == 1 {
        return pieces.into_iter().next().unwrap_or_else(|| like.zeros_like());
    }
    if like.dim() == 1 {
        return Tensor::cat(&pieces, 0);
    }
    let mut rows: Vec<Tensor> = Vec::new();
    let mut current: Vec<Tensor> = Vec::new();
    for (block, piece) in blocks.iter().zip(pieces) {
        if block.cols.is_some_and(|(start, _)| start == 0) && !current.is_empty() {
            rows.push(Tensor::cat(&current, 1));
            current.clear();
        }
        current.push(piece);
    }
    rows.push(Tensor::cat(&current, 1));
    Tensor::cat(&rows, 0)
}
