//! Checkpoints of a fused group, member by member, in the format of a lone trial: each member's
//! folder holds the network and optimizer state the member would have had alone. A member
//! therefore resumes in any group, or alone, and a lone trial's checkpoint joins a group.

use crate::checkpoint::{self, Meta};
use crate::models::fused;
use crate::optim::{Optimizer, OptimizerConfig};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::nn::VarStore;
use tch::Tensor;

/// One member's lone copy of its network and optimizer, the bridge between its checkpoint folder
/// and its slice of the fused group.
pub struct MemberState {
    /// None: the member neither resumes nor checkpoints.
    pub dir: Option<PathBuf>,
    vars: VarStore,
    optimizer: Optimizer,
}

impl MemberState {
    /// `vars`: the member's lone network (as initialised alone); `cfg`: its own optimizer.
    pub fn new(dir: Option<PathBuf>, vars: VarStore, cfg: OptimizerConfig) -> MemberState {
        let optimizer = Optimizer::new(cfg, &vars);
        MemberState { dir, vars, optimizer }
    }

    /// Loads the member's checkpoint into its lone copy; where it stood, or None without one.
    pub fn load(&mut self) -> anyhow::Result<Option<Meta>> {
        match &self.dir {
            Some(dir) => checkpoint::load(dir, &mut self.vars, &mut self.optimizer),
            None => Ok(None),
        }
    }

    /// Copies the lone copy, network and optimizer state, into member `g` of the group. The
    /// group's step counts become the member's: members that share a group share a position.
    pub fn install(&self, fused_vars: &VarStore, fused_optimizer: &mut Optimizer, g: i64) -> Result<(), String> {
        fused::load_member(fused_vars, g, &self.vars)?;
        let mut state: HashMap<String, Tensor> = fused_optimizer.state().into_iter().collect();
        tch::no_grad(|| {
            for (name, lone) in self.optimizer.state() {
                let fused = state.get_mut(&name).ok_or_else(|| format!("fused optimizer has no state `{name}`"))?;
                if lone.dim() == 0 {
                    *fused = lone;
                } else {
                    fused::member_slice(fused, &lone.size(), g).copy_(&lone);
                }
            }
            Ok::<(), String>(())
        })?;
        fused_optimizer.load_state(&state)
    }

    /// Writes member `g`'s slice of the group, network and optimizer state, as its checkpoint.
    pub fn save(
        &mut self,
        fused_vars: &VarStore,
        fused_optimizer: &Optimizer,
        g: i64,
        meta: &Meta,
    ) -> anyhow::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let fused_state: HashMap<String, Tensor> = fused_optimizer.state().into_iter().collect();
        let state: HashMap<String, Tensor> = self
            .optimizer
            .state()
            .into_iter()
            .map(|(name, lone)| {
                let fused = &fused_state[&name];
                let value =
                    if lone.dim() == 0 { fused.shallow_clone() } else { fused::member_slice(fused, &lone.size(), g) };
                (name, value)
            })
            .collect();
        self.optimizer.load_state(&state).map_err(anyhow::Error::msg)?;
        let lone = self.vars.variables();
        tch::no_grad(|| {
            for (name, value) in fused::member_variables(fused_vars, g, &self.vars) {
                let mut var = lone[&name].shallow_clone();
                var.copy_(&value);
            }
        });
        checkpoint::save(&dir, &self.vars, &self.optimizer, meta)
    }
}
