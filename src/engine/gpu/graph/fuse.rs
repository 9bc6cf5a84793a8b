//! Fusion after lowering: an activation folded into the kernel that produces its input.

use super::{Binding, Planner};
use crate::engine::gpu::kernels::Shader;
use std::collections::{HashMap, HashSet};

impl Planner<'_> {
    /// Fuses an element-wise activation into the kernel producing its input when nothing else
    /// reads that intermediate (conv + ReLU/Clip/Sigmoid become one pass).
    pub(super) fn fuse_activations(&mut self, pinned: &HashSet<usize>) {
        let mut producer: HashMap<usize, usize> = HashMap::new();
        let mut removed = vec![false; self.kernels.len()];
        for i in 0..self.kernels.len() {
            let k = &self.kernels[i];
            if k.shader == Shader::Unary {
                if let (Binding::Value(out), Binding::Value(inp)) = (k.bindings[0], k.bindings[1]) {
                    if let Some(&p) = producer.get(&inp) {
                        let storage = self.values[inp].storage;
                        let shape_ok = self.values[inp].shape.iter().product::<usize>() == self.values[out].shape.iter().product::<usize>();
                        if self.uses[inp] == 1 && !pinned.contains(&storage) && shape_ok && self.kernels[p].fusable_act() {
                            let act = self.kernels[i].act();
                            self.kernels[p].set_act(act);
                            self.kernels[p].bindings[0] = Binding::Value(out);
                            self.kernels[p].label.push_str(&format!("+{}", act.name()));
                            removed[i] = true;
                            producer.insert(out, p);
                            continue;
                        }
                    }
                }
            }
            if let Binding::Value(out) = self.kernels[i].bindings[0] {
                producer.insert(out, i);
            }
        }
        let mut i = 0;
        self.kernels.retain(|_| {
            i += 1;
            !removed[i - 1]
        });
    }
}
