//! What a kernel binding reads: a GPU value (a tensor of the plan) or a parameter buffer
//! (weights and constants, uploaded once).

/// Where a kernel binding reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Value(usize),
    Param(usize),
}
