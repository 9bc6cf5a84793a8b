//! The rewrite that swaps edgesight's ops into tract's typed model, as named rules: each a
//! matcher that looks at one node and returns the patch replacing it (or fusing what follows
//! it), if it applies. `cpu_kernels` lists the rules; the two loops here run them.
//!
//! Why not tract's `Rewriter` (tract-core 0.23.9, src/model/rewriter.rs): it repeats its pass
//! until no rule fires and runs `prop_consts` and `compact` after every pass that changed
//! something, so node ids, constant folding and the order the fusions see the model in would
//! differ from this rewrite's (one pass of replacements, then each fusion restarted after every
//! match, one `compact` at the end), and with them the plans.

use super::choice::KernelChoice;
use super::spec::Isa;
use tract_onnx::prelude::*;

/// What every rule may read: the kernel set of this CPU and the caller's overrides.
pub struct RuleContext<'a> {
    pub isa: Isa,
    pub choice: &'a KernelChoice,
}

/// A rule's patch and the count it adds to.
pub struct Replacement {
    pub patch: TypedModelPatch,
    pub tally: fn(&mut PatchCount),
}

/// One rewrite rule: a name (for errors, logs and the module docs) and a matcher.
pub struct Rule {
    pub name: &'static str,
    pub matcher: fn(&RuleContext, &TypedModel, &TypedNode) -> TractResult<Option<Replacement>>,
    /// Compact the model after each of its patches (a fusion that leaves dead nodes behind).
    pub compact_after: bool,
}

/// What `patch_model` replaced, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PatchCount {
    pub convs: usize,
    pub deconvs: usize,
    pub resizes: usize,
    pub reductions: usize,
    pub exps: usize,
    pub gelus: usize,
    pub transposes: usize,
    pub broadcasts: usize,
    pub fused_clamps: usize,
    pub fused_hard_swish: usize,
    /// Additions and clamps run in a deconvolution's output pass.
    pub fused_deconv_tails: usize,
    /// Pointwise expansions computed inside the depthwise convolution that reads them.
    pub fused_expansions: usize,
}

/// Every node once, in the eval order from before the pass: the first rule that matches it
/// patches it at once, so later nodes are matched against the patched model. (The rules of
/// one list match distinct op types, so at most one matches a node.)
pub fn each_node_once(model: &mut TypedModel, rules: &[Rule], cx: &RuleContext, count: &mut PatchCount) -> TractResult<()> {
    for id in model.eval_order()? {
        for rule in rules {
            if let Some(r) = (rule.matcher)(cx, model, model.node(id))? {
                r.patch.apply(model)?;
                if rule.compact_after {
                    model.compact()?;
                }
                (r.tally)(count);
                break;
            }
        }
    }
    Ok(())
}

/// `rule` until it matches nowhere: the first node in eval order it matches is patched, then
/// the search starts again on the patched model.
pub fn until_none(model: &mut TypedModel, rule: &Rule, cx: &RuleContext, count: &mut PatchCount) -> TractResult<()> {
    loop {
        let mut found = None;
        for id in model.eval_order()? {
            if let Some(r) = (rule.matcher)(cx, model, model.node(id))? {
                found = Some(r);
                break;
            }
        }
        let Some(r) = found else { return Ok(()) };
        r.patch.apply(model)?;
        if rule.compact_after {
            model.compact()?;
        }
        (r.tally)(count);
    }
}
