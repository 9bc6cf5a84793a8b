//! LitePose / HigherHRNet bottom-up decoding: associative-embedding grouping.
//!
//! A faithful port of the official post-processing (mit-han-lab/litepose at 00b702d):
//! `lib/core/inference.py` (`get_multi_stage_outputs`, `aggregate_results`), `lib/core/group.py`
//! (`HeatmapParser`: NMS, top-k, `match_by_tag` with Munkres, `adjust`, `refine`, person scores)
//! and `lib/utils/transforms.py` (`get_final_preds`), driven the way `valid.py` drives them with
//! the released test configs (experiments/{coco,crowd_pose}/mobilenet/mobile.yaml plus the
//! defaults of lib/config/default.py).
//!
//! Data flow of [`decode`] (one scale, as the released configs use):
//! 1. out0 `[1, 2J, H/4, W/4]` is resized bilinearly (PyTorch `align_corners=False`) to out1's
//!    size `[H/2, W/2]`; heatmaps = (out0 heatmaps + out1) / 2; tags = out0 tag channels.
//! 2. Flip test: the outputs of the horizontally flipped input get the same treatment, are
//!    flipped back and their joints permuted by the schema's flip index.
//! 3. `PROJECT2IMAGE: True` (both LitePose test configs): heatmaps and tags are resized again,
//!    to the network input size; grouping runs at that resolution.
//! 4. Final heatmaps = mean of plain and flipped; tags are NOT averaged: each pixel carries a
//!    tag vector (plain, flipped), so tag distances are 2-D with the flip test.
//! 5. [`group`]; joint positions (heatmap pixel index + 0.5 +- 0.25) map linearly to input
//!    pixels and then to source pixels.
//!
//! The flip test (FLIP_TEST: True in the released configs) runs when the caller passes the
//! outputs of the flipped input. [`Decoder`] keeps the input-resolution buffers between frames.
//!
//! Exactness: [`group`] reproduces the official `HeatmapParser.parse` bit for bit (checked by
//! tests/litepose_official.rs against the unmodified group.py): the assignment runs the
//! `munkres` package's own procedure ([`crate::assignment::munkres`]), so equal-cost ties
//! resolve as in the official code; float reductions follow the official dtypes (float32 maps
//! and means, float64 costs, Python-float thresholds) and numpy's summation order (pairwise
//! sums for 1-D means); group.py's dictionary keyed by a float tag value is kept, collisions
//! included. What cannot be reproduced exactly:
//! - the order `torch.topk` gives to equal heatmap values (CPU: libstdc++ partial_sort heap
//!   order; CUDA: radix select plus sort). Here equal values go in pixel-index order. It
//!   matters only for exact ties between candidates of one joint (e.g. plateaus surviving NMS);
//! - the last bit of resized values where PyTorch's build fuses multiply-adds (and on CUDA):
//!   [`resize_bilinear`] follows the CPU kernel's weights and operation order without fusing;
//! - the mean tag in `refine` is `torch.mean` there; here a sequential float32 sum / n.
//!
//! Choices beyond the official code: the source mapping is edgesight's [`Transform`] (linear,
//! like `transform_preds`, but for edgesight's top-left letterbox rather than LitePose's centred
//! affine crop); a person's box spans its joints with a positive score (the official results
//! take min/max over all joints, missing ones at heatmap (0, 0) included); no person is dropped
//! (the official evaluation keeps all of them too).

use crate::assignment::Solver;
use crate::detections::{Keypoint, Person};
use crate::tensor::Tensor;
use crate::preprocess::Transform;
use crate::skeleton::{COCO17_FLIP_INDEX, CROWDPOSE14_FLIP_INDEX};
use anyhow::{bail, ensure, Result};

/// The order in which joints are matched (group.py `Params.joint_order`, without a centre
/// joint): nose, eyes, ears, shoulders, then the hips before the arms, then knees and ankles.
pub const COCO_JOINT_ORDER: [usize; 17] = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16];
/// For CrowdPose the official code walks the first 14 entries of the same list (`for i in
/// range(num_joints)`), which happen to be a permutation of 0..14.
pub const CROWDPOSE_JOINT_ORDER: [usize; 14] = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13];

/// Grouping and decoding settings; the defaults are the official COCO test configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupingParams {
    /// Number of joints J (DATASET.NUM_JOINTS).
    pub joints: usize,
    /// Matching order of the joints (a permutation of 0..J).
    pub joint_order: &'static [usize],
    /// Horizontal-flip joint permutation (FLIP_CONFIG), used by [`decode`] with a flipped pass.
    pub flip_index: &'static [usize],
    /// NMS max-pool window (TEST.NMS_KERNEL: 5 in the LitePose configs).
    pub nms_kernel: usize,
    /// NMS max-pool padding (TEST.NMS_PADDING: 2).
    pub nms_padding: usize,
    /// Candidates per joint (top-k) and people considered for matching (DATASET.MAX_NUM_PEOPLE: 30).
    pub max_people: usize,
    /// A candidate joint is kept when its heatmap value is above this (TEST.DETECTION_THRESHOLD:
    /// 0.1). float64 like the Python float it is compared with.
    pub detection_threshold: f64,
    /// A candidate joins a person only when its tag distance is below this (TEST.TAG_THRESHOLD: 1.0).
    pub tag_threshold: f64,
    /// Cost = round(distance) * 100 - score instead of the plain distance (TEST.USE_DETECTION_VAL: True).
    pub use_detection_val: bool,
    /// Skip a joint type once MAX_NUM_PEOPLE people exist (TEST.IGNORE_TOO_MUCH: False).
    pub ignore_too_much: bool,
    /// Quarter-pixel shift toward the higher neighbour (TEST.ADJUST: True).
    pub adjust: bool,
    /// Fill missing joints from the heatmaps and the person's mean tag (TEST.REFINE: True).
    pub refine: bool,
    /// Resize heatmaps and tags to the input size before grouping (TEST.PROJECT2IMAGE: True in
    /// the LitePose configs). When false, grouping runs at out1's resolution.
    pub project_to_image: bool,
    /// Assignment solver: [`Solver::Munkres`] reproduces the `munkres` package's choices on
    /// equal-cost ties; [`Solver::Hungarian`] is O(n^3) with the same minimal cost.
    pub solver: Solver,
}

impl GroupingParams {
    /// experiments/coco/mobilenet/mobile.yaml with the lib/config/default.py defaults.
    pub fn coco() -> GroupingParams {
        GroupingParams {
            joints: 17,
            joint_order: &COCO_JOINT_ORDER,
            flip_index: &COCO17_FLIP_INDEX,
            nms_kernel: 5,
            nms_padding: 2,
            max_people: 30,
            detection_threshold: 0.1,
            tag_threshold: 1.0,
            use_detection_val: true,
            ignore_too_much: false,
            adjust: true,
            refine: true,
            project_to_image: true,
            solver: Solver::Munkres,
        }
    }

    /// experiments/crowd_pose/mobilenet/mobile.yaml: the same test settings with 14 joints.
    pub fn crowdpose() -> GroupingParams {
        GroupingParams {
            joints: 14,
            joint_order: &CROWDPOSE_JOINT_ORDER,
            flip_index: &CROWDPOSE14_FLIP_INDEX,
            ..GroupingParams::coco()
        }
    }

    fn validate(&self) -> Result<()> {
        let j = self.joints;
        ensure!(j > 0, "no joints");
        ensure!(self.joint_order.len() == j, "joint order has {} entries for {j} joints", self.joint_order.len());
        let mut seen = vec![false; j];
        for &o in self.joint_order {
            ensure!(o < j && !seen[o], "joint order {:?} is not a permutation of 0..{j}", self.joint_order);
            seen[o] = true;
        }
        ensure!(self.flip_index.len() == j, "flip index has {} entries for {j} joints", self.flip_index.len());
        ensure!(self.flip_index.iter().all(|&f| f < j), "flip index out of range");
        ensure!(
            self.nms_kernel > 0 && 2 * self.nms_padding + 1 == self.nms_kernel,
            "NMS kernel {} with padding {} does not keep the map size",
            self.nms_kernel,
            self.nms_padding
        );
        Ok(())
    }
}

impl Default for GroupingParams {
    fn default() -> Self {
        GroupingParams::coco()
    }
}

/// One grouped person, in heatmap pixel coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupedPerson {
    /// (x, y, score) per joint in schema order; a joint neither matched nor refined is (0, 0, 0).
    pub joints: Vec<(f32, f32, f32)>,
    /// Mean of the J joint scores after matching and adjusting, before refinement (group.py
    /// `parse`: `scores = [i[:, 2].mean() for i in ans[0]]` runs before `refine`).
    pub score: f32,
}

// ----------------------------------------------------------------------------------------------
// Resampling

/// `torch.nn.functional.interpolate(x, size=(out_h, out_w), mode='bilinear', align_corners=False)`
/// on `channels` planes of `in_h x in_w` (row-major, float32 arithmetic as PyTorch's CPU kernel).
pub fn resize_bilinear(src: &[f32], channels: usize, in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let mut out = vec![0f32; channels * out_h * out_w];
    resize_bilinear_into(src, channels, in_h, in_w, out_h, out_w, &mut out);
    out
}

/// [`resize_bilinear`] into `out` (`channels * out_h * out_w` values).
pub fn resize_bilinear_into(
    src: &[f32],
    channels: usize,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
    out: &mut [f32],
) {
    assert_eq!(src.len(), channels * in_h * in_w, "resize_bilinear: input size");
    assert_eq!(out.len(), channels * out_h * out_w, "resize_bilinear: output size");
    if in_h == out_h && in_w == out_w {
        // Scale 1: every source index equals its destination index, a copy.
        out.copy_from_slice(src);
        return;
    }
    let ys = linear_taps(in_h, out_h);
    let xs = linear_taps(in_w, out_w);
    // Horizontal pass once per input row (t = w0 * a + w1 * b), then the vertical blend
    // (h0 * t0 + h1 * t1): the same float operations as evaluating each output directly.
    let mut rows = vec![0f32; in_h * out_w];
    let mut row_done = vec![false; in_h];
    for c in 0..channels {
        let plane = &src[c * in_h * in_w..(c + 1) * in_h * in_w];
        row_done.iter_mut().for_each(|d| *d = false);
        for &(y0, y1, _, _) in &ys {
            for y in [y0, y1] {
                if row_done[y] {
                    continue;
                }
                row_done[y] = true;
                let r = &plane[y * in_w..(y + 1) * in_w];
                for (t, &(x0, x1, w0, w1)) in rows[y * out_w..(y + 1) * out_w].iter_mut().zip(&xs) {
                    *t = w0 * r[x0] + w1 * r[x1];
                }
            }
        }
        let dst = &mut out[c * out_h * out_w..(c + 1) * out_h * out_w];
        for (o_row, &(y0, y1, h0, h1)) in dst.chunks_exact_mut(out_w).zip(&ys) {
            let t0 = &rows[y0 * out_w..(y0 + 1) * out_w];
            let t1 = &rows[y1 * out_w..(y1 + 1) * out_w];
            for ((o, &a), &b) in o_row.iter_mut().zip(t0).zip(t1) {
                *o = h0 * a + h1 * b;
            }
        }
    }
}

/// Per output index: (index0, index1, lambda0, lambda1) as ATen's `compute_indices_weights_linear`
/// computes them: scale = in / out, src = max(scale * (dst + 0.5) - 0.5, 0), index0 = floor(src).
fn linear_taps(in_len: usize, out_len: usize) -> Vec<(usize, usize, f32, f32)> {
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|i| {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src as usize).min(in_len - 1);
            let i1 = if i0 < in_len - 1 { i0 + 1 } else { i0 };
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            (i0, i1, 1.0 - l1, l1)
        })
        .collect()
}

/// `torch.flip(x, [3])` on `channels` planes of h x w.
fn flip_horizontal(src: &mut [f32], w: usize) {
    for row in src.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// Channel permutation `x[:, index]` on planes of `plane` elements.
fn permute_planes(src: &[f32], plane: usize, index: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(index.len() * plane);
    for &c in index {
        out.extend_from_slice(&src[c * plane..(c + 1) * plane]);
    }
    out
}

// ----------------------------------------------------------------------------------------------
// NMS and top-k

/// `det * (MaxPool2d(kernel, 1, padding)(det) == det)` on one h x w map: a pixel keeps its value
/// when it equals the maximum of its window (clipped at the border, as -inf padding does); all
/// other pixels become zero.
pub fn nms(det: &[f32], h: usize, w: usize, kernel: usize, padding: usize) -> Vec<f32> {
    assert_eq!(det.len(), h * w);
    let reach_lo = padding;
    let reach_hi = kernel - 1 - padding;
    // Separable running max: rows, then columns.
    let mut row_max = vec![0f32; h * w];
    for y in 0..h {
        let r = &det[y * w..(y + 1) * w];
        for x in 0..w {
            let (a, b) = (x.saturating_sub(reach_lo), (x + reach_hi).min(w - 1));
            row_max[y * w + x] = r[a..=b].iter().copied().fold(f32::NEG_INFINITY, max_nan);
        }
    }
    let mut out = vec![0f32; h * w];
    for y in 0..h {
        let (a, b) = (y.saturating_sub(reach_lo), (y + reach_hi).min(h - 1));
        for x in 0..w {
            let m = (a..=b).map(|yy| row_max[yy * w + x]).fold(f32::NEG_INFINITY, max_nan);
            let d = det[y * w + x];
            out[y * w + x] = if m == d { d } else { d * 0.0 };
        }
    }
    out
}

/// max that propagates NaN like PyTorch's max-pool.
fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else if b > a {
        b
    } else {
        a
    }
}

/// The pixels of one map that keep a value above `threshold` through [`nms`], with that value,
/// in pixel order. Same result as filtering the full NMS map, but only pixels above the
/// threshold are examined against their window (a pixel survives NMS when no pixel of its
/// window is larger or NaN). Needs threshold >= 0 (suppressed pixels become 0).
fn peaks_above(det: &[f32], h: usize, w: usize, kernel: usize, padding: usize, threshold: f64) -> Vec<(usize, f32)> {
    debug_assert!(threshold >= 0.0);
    let t32 = f32_below(threshold);
    let reach_hi = kernel - 1 - padding;
    let mut out = Vec::new();
    for y in 0..h {
        let (ya, yb) = (y.saturating_sub(padding), (y + reach_hi).min(h - 1));
        for x in 0..w {
            let v = det[y * w + x];
            // Same as `v as f64 > threshold`; NaN is never a candidate.
            if v.is_nan() || v <= t32 {
                continue;
            }
            let (xa, xb) = (x.saturating_sub(padding), (x + reach_hi).min(w - 1));
            let is_max = (ya..=yb).all(|yy| det[yy * w + xa..=yy * w + xb].iter().all(|&n| n <= v));
            if is_max {
                out.push((y * w + x, v));
            }
        }
    }
    out
}

/// The largest float32 not above `t`: for every float32 v, `v > f32_below(t)` exactly when
/// `v as f64 > t`.
fn f32_below(t: f64) -> f32 {
    let r = t as f32;
    if r as f64 > t {
        next_down_f32(r)
    } else {
        r
    }
}

/// The float32 just below a finite `r` (`f32::next_down`, stable only since Rust 1.86).
fn next_down_f32(r: f32) -> f32 {
    if r == 0.0 {
        -f32::from_bits(1)
    } else if r > 0.0 {
        f32::from_bits(r.to_bits() - 1)
    } else {
        f32::from_bits(r.to_bits() + 1)
    }
}

/// The candidates of one joint that survive `torch.topk(k)` and then `val > threshold`:
/// (pixel index, value), highest value first; equal values in pixel-index order.
pub fn top_k(nms_map: &[f32], k: usize, threshold: f64) -> Vec<(usize, f32)> {
    let c: Vec<(usize, f32)> =
        nms_map.iter().enumerate().filter(|(_, &v)| v as f64 > threshold).map(|(i, &v)| (i, v)).collect();
    best_k(c, k)
}

/// Sorts (pixel, value) candidates by value, highest first, equal values by pixel; keeps k.
fn best_k(mut c: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    // No NaN gets here (NaN fails every `>` threshold test), so this order is total.
    c.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    c.truncate(k);
    c
}

// ----------------------------------------------------------------------------------------------
// Matching (group.py match_by_tag)

/// numpy's pairwise float32 summation (`FLOAT_pairwise_sum`), used by `ndarray.mean` on 1-D data.
fn pairwise_sum_f32(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        let mut res = 0f32;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0f32; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum_f32(&a[..n2]) + pairwise_sum_f32(&a[n2..])
    }
}

/// `np.mean(x, axis=0)` of a list of float32 tag vectors of length `d` (flat, n x d): for d = 1
/// numpy reduces the contiguous column pairwise, for d > 1 it adds rows in order.
fn mean_tag(tags: &[f32], d: usize) -> Vec<f32> {
    let n = tags.len() / d;
    if d == 1 {
        return vec![(0.0 + pairwise_sum_f32(tags)) / n as f32];
    }
    (0..d)
        .map(|k| {
            let mut s = 0f32;
            for i in 0..n {
                s += tags[i * d + k];
            }
            s / n as f32
        })
        .collect()
}

/// One candidate joint: position (pixel), score and tag vector.
#[derive(Debug, Clone)]
struct Candidate {
    x: usize,
    y: usize,
    val: f32,
    tag: Vec<f32>,
}

/// A person while matching: group.py keeps `joint_dict[key]` (a J x (3 + D) array) and
/// `tag_dict[key]` (the tags of its joints), keyed by the first tag component of the joint that
/// started it. Python dicts keep insertion order, and a new person whose key equals an existing
/// key lands in that entry (overwriting the joint and restarting its tag list), both kept here.
#[derive(Debug, Clone)]
struct Group {
    key: f32,
    /// J x (x, y, val); unset joints are zero.
    joints: Vec<[f32; 3]>,
    /// Tags of the joints that joined, flat n x D.
    tags: Vec<f32>,
}

struct Matcher<'a> {
    params: &'a GroupingParams,
    d: usize,
    groups: Vec<Group>,
}

impl Matcher<'_> {
    /// `joint_dict.setdefault(key, default)[idx] = joint; tag_dict[key] = [tag]`.
    fn start_or_overwrite(&mut self, idx: usize, c: &Candidate) {
        let key = c.tag[0];
        let g = match self.groups.iter().position(|g| g.key == key) {
            Some(i) => i,
            None => {
                self.groups.push(Group { key, joints: vec![[0.0; 3]; self.params.joints], tags: Vec::new() });
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[g];
        g.joints[idx] = [c.x as f32, c.y as f32, c.val];
        g.tags.clear();
        g.tags.extend_from_slice(&c.tag);
    }

    fn add_joint_type(&mut self, i: usize, idx: usize, cands: &[Candidate]) {
        if cands.is_empty() {
            return;
        }
        if i == 0 || self.groups.is_empty() {
            for c in cands {
                self.start_or_overwrite(idx, c);
            }
            return;
        }
        let p = self.params;
        let num_grouped = self.groups.len().min(p.max_people);
        if p.ignore_too_much && num_grouped == p.max_people {
            return;
        }
        let means: Vec<Vec<f32>> = self.groups[..num_grouped].iter().map(|g| mean_tag(&g.tags, self.d)).collect();
        let num_added = cands.len();
        let cols = num_added.max(num_grouped);
        let mut diff_saved = vec![0f64; num_added * num_grouped];
        // Padding columns (when more candidates than people) cost 1e10, as group.py pads them.
        let mut cost = vec![1e10f64; num_added * cols];
        for (r, c) in cands.iter().enumerate() {
            for (g, mean) in means.iter().enumerate() {
                // np.linalg.norm(joints[:, None, 3:] - grouped_tags, ord=2, axis=2) in float64.
                let mut s = 0f64;
                for (&a, &b) in c.tag.iter().zip(mean) {
                    let diff = a as f64 - b as f64;
                    s += diff * diff;
                }
                let dist = s.sqrt();
                diff_saved[r * num_grouped + g] = dist;
                cost[r * cols + g] =
                    if p.use_detection_val { dist.round_ties_even() * 100.0 - c.val as f64 } else { dist };
            }
        }
        let pairs = p.solver.solve(&cost, num_added, cols);
        for (row, col) in pairs.into_iter().enumerate() {
            let c = &cands[row];
            match col {
                Some(col) if col < num_grouped && diff_saved[row * num_grouped + col] < p.tag_threshold => {
                    let g = &mut self.groups[col];
                    g.joints[idx] = [c.x as f32, c.y as f32, c.val];
                    g.tags.extend_from_slice(&c.tag);
                }
                _ => self.start_or_overwrite(idx, c),
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Adjust and refine

/// group.py `adjust`: a detected joint at pixel (x, y) moves to (x + 0.5 +- 0.25, y + 0.5 +- 0.25),
/// + when the right (lower) neighbour of the heatmap is strictly higher than the left (upper) one.
fn adjust_joint(hm: &[f32], h: usize, w: usize, x: usize, y: usize) -> (f32, f32) {
    let row = &hm[y * w..(y + 1) * w];
    let mut fx = x as f32;
    let mut fy = y as f32;
    fx += if row[(x + 1).min(w - 1)] > row[x.saturating_sub(1)] { 0.25 } else { -0.25 };
    fy += if hm[(y + 1).min(h - 1) * w + x] > hm[y.saturating_sub(1) * w + x] { 0.25 } else { -0.25 };
    (fx + 0.5, fy + 0.5)
}

/// Tile maxima of the heatmaps, so that refinement can skip tiles that cannot hold the argmax.
struct RefineIndex {
    tile: usize,
    tiles_x: usize,
    /// Per joint: tile maxima, and tile indices by descending maximum (built on first use).
    tile_max: Vec<Vec<f32>>,
    order: Vec<Option<Vec<usize>>>,
}

impl RefineIndex {
    const TILE: usize = 16;

    fn new(joints: usize, w: usize) -> RefineIndex {
        RefineIndex {
            tile: Self::TILE,
            tiles_x: w.div_ceil(Self::TILE),
            tile_max: vec![Vec::new(); joints],
            order: vec![None; joints],
        }
    }

    fn prepare(&mut self, j: usize, hm: &[f32], h: usize, w: usize) {
        if self.order[j].is_some() {
            return;
        }
        let t = self.tile;
        let tiles_y = h.div_ceil(t);
        let mut m = vec![f32::NEG_INFINITY; tiles_y * self.tiles_x];
        for y in 0..h {
            for x in 0..w {
                let v = hm[y * w + x];
                let slot = &mut m[(y / t) * self.tiles_x + x / t];
                // NaN tiles sort first and are always scanned.
                if v > *slot || v.is_nan() {
                    *slot = v;
                }
            }
        }
        let mut order: Vec<usize> = (0..m.len()).collect();
        order.sort_by(|&a, &b| m[b].total_cmp(&m[a]).then(a.cmp(&b)));
        self.tile_max[j] = m;
        self.order[j] = Some(order);
    }
}

/// `argmax(det - round(||tag - prev_tag||))` over one joint's maps (float32, first index on ties),
/// i.e. refine's `pos[i]`. Pixels are visited tile by tile, highest tile first; since the rounded
/// distance is never negative, a tile whose heatmap maximum is below the best value so far cannot
/// hold the argmax, and the scan stops there.
fn refine_argmax(
    index: &mut RefineIndex,
    j: usize,
    hm: &[f32],
    tag: &[&[f32]],
    prev: &[f32],
    h: usize,
    w: usize,
) -> Option<usize> {
    index.prepare(j, hm, h, w);
    let t = index.tile;
    let tiles_x = index.tiles_x;
    let mut best = f32::NEG_INFINITY;
    let mut best_idx = usize::MAX;
    for &tile in index.order[j].as_ref().unwrap() {
        if index.tile_max[j][tile] < best {
            break;
        }
        let (ty, tx) = (tile / tiles_x, tile % tiles_x);
        for y in ty * t..((ty + 1) * t).min(h) {
            for x in tx * t..((tx + 1) * t).min(w) {
                let p = y * w + x;
                let v0 = hm[p];
                if v0 < best {
                    continue;
                }
                let mut s = 0f32;
                for (plane, &pk) in tag.iter().zip(prev) {
                    let diff = plane[p] - pk;
                    s += diff * diff;
                }
                let v = v0 - s.sqrt().round_ties_even();
                if v > best || (v == best && p < best_idx) {
                    best = v;
                    best_idx = p;
                }
            }
        }
    }
    (best_idx != usize::MAX).then_some(best_idx)
}

/// The plain full scan `refine_argmax` must agree with (tests).
#[cfg(test)]
fn refine_argmax_full(hm: &[f32], tag: &[&[f32]], prev: &[f32]) -> usize {
    let mut best = f32::NEG_INFINITY;
    let mut best_idx = 0;
    for p in 0..hm.len() {
        let mut s = 0f32;
        for (plane, &pk) in tag.iter().zip(prev) {
            let diff = plane[p] - pk;
            s += diff * diff;
        }
        let v = hm[p] - s.sqrt().round_ties_even();
        if v > best {
            best = v;
            best_idx = p;
        }
    }
    best_idx
}

/// group.py `refine` for one person (`joints` are (x, y, val) after `adjust`).
fn refine_person(
    index: &mut RefineIndex,
    joints: &mut [(f32, f32, f32)],
    heatmaps: &[f32],
    tags: &[f32],
    d: usize,
    h: usize,
    w: usize,
) {
    let plane = h * w;
    let jn = joints.len();
    let tag_plane = |k: usize, j: usize| &tags[(k * jn + j) * plane..(k * jn + j + 1) * plane];
    // Mean tag of the detected joints, read at their (truncated) positions in their own channel.
    let mut sum = vec![0f32; d];
    let mut n = 0usize;
    for (j, &(x, y, val)) in joints.iter().enumerate() {
        if val > 0.0 {
            let (xi, yi) = ((x as i32).clamp(0, w as i32 - 1) as usize, (y as i32).clamp(0, h as i32 - 1) as usize);
            for (k, s) in sum.iter_mut().enumerate() {
                *s += tag_plane(k, j)[yi * w + xi];
            }
            n += 1;
        }
    }
    if n == 0 {
        // The official code would fail on an empty torch.cat; such a person cannot arise from
        // matching (every person has a joint above the detection threshold).
        return;
    }
    let prev: Vec<f32> = sum.iter().map(|s| s / n as f32).collect();
    for j in 0..joints.len() {
        if joints[j].2 != 0.0 {
            continue;
        }
        let hm = &heatmaps[j * plane..(j + 1) * plane];
        let planes: Vec<&[f32]> = (0..d).map(|k| tag_plane(k, j)).collect();
        let Some(pos) = refine_argmax(index, j, hm, &planes, &prev, h, w) else { continue };
        let (yy, xx) = (pos / w, pos % w);
        let val = hm[pos];
        let mut x = xx as f32 + 0.5;
        let mut y = yy as f32 + 0.5;
        let row = &hm[yy * w..(yy + 1) * w];
        x += if row[(xx + 1).min(w - 1)] > row[xx.saturating_sub(1)] { 0.25 } else { -0.25 };
        y += if hm[(yy + 1).min(h - 1) * w + xx] > hm[yy.saturating_sub(1) * w + xx] { 0.25 } else { -0.25 };
        if val > 0.0 {
            joints[j] = (x, y, val);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// The parser

/// group.py `HeatmapParser.parse` for one image.
///
/// `heatmaps`: [J, H, W] (the final, averaged heatmaps); `tags`: [D, J, H, W], D tag values per
/// joint and pixel: D = 1 ([J, H, W]) without the flip test, 2 with it (the plain pass's tags,
/// then the flipped pass's); D is inferred from the length. The official code holds the same
/// values as [1, J, H, W, D] (`torch.cat(tags_list, dim=4)`).
/// Returns all people in the order the matcher created them, joints in heatmap pixel
/// coordinates (pixel index + 0.5 +- 0.25 after `adjust`).
///
/// Panics when `params` are inconsistent (joint order or flip index not matching `joints`, an
/// NMS kernel that changes the map size) or the slices do not match `h` and `w`.
pub fn group(heatmaps: &[f32], tags: &[f32], h: usize, w: usize, params: &GroupingParams) -> Vec<GroupedPerson> {
    params.validate().expect("invalid GroupingParams");
    let jn = params.joints;
    let plane = h * w;
    assert_eq!(heatmaps.len(), jn * plane, "heatmaps must be [J, H, W]");
    assert!(plane > 0 && !tags.is_empty() && tags.len() % (jn * plane) == 0, "tags must be [D, J, H, W]");
    let d = tags.len() / (jn * plane);

    // top_k: NMS, k best per joint, their tags.
    let mut candidates: Vec<Vec<Candidate>> = Vec::with_capacity(jn);
    for j in 0..jn {
        let hm = &heatmaps[j * plane..(j + 1) * plane];
        let best = if params.detection_threshold >= 0.0 {
            best_k(
                peaks_above(hm, h, w, params.nms_kernel, params.nms_padding, params.detection_threshold),
                params.max_people,
            )
        } else {
            top_k(&nms(hm, h, w, params.nms_kernel, params.nms_padding), params.max_people, params.detection_threshold)
        };
        candidates.push(
            best.into_iter()
                .map(|(p, val)| Candidate {
                    x: p % w,
                    y: p / w,
                    val,
                    tag: (0..d).map(|k| tags[(k * jn + j) * plane + p]).collect(),
                })
                .collect(),
        );
    }

    // match_by_tag
    let mut matcher = Matcher { params, d, groups: Vec::new() };
    for (i, &idx) in params.joint_order.iter().enumerate() {
        matcher.add_joint_type(i, idx, &candidates[idx]);
    }

    let mut people: Vec<GroupedPerson> = matcher
        .groups
        .into_iter()
        .map(|g| {
            let joints: Vec<(f32, f32, f32)> = g
                .joints
                .iter()
                .enumerate()
                .map(|(j, &[x, y, val])| {
                    if params.adjust && val > 0.0 {
                        let hm = &heatmaps[j * plane..(j + 1) * plane];
                        let (ax, ay) = adjust_joint(hm, h, w, x as usize, y as usize);
                        (ax, ay, val)
                    } else {
                        (x, y, val)
                    }
                })
                .collect();
            let vals: Vec<f32> = joints.iter().map(|j| j.2).collect();
            let score = (0.0 + pairwise_sum_f32(&vals)) / jn as f32;
            GroupedPerson { joints, score }
        })
        .collect();

    if params.refine {
        let mut index = RefineIndex::new(jn, w);
        for p in &mut people {
            refine_person(&mut index, &mut p.joints, heatmaps, tags, d, h, w);
        }
    }
    people
}

// ----------------------------------------------------------------------------------------------
// From network outputs

/// Checks out0 = [1, 2J, H0, W0] and out1 = [1, J, H1, W1].
pub fn check_shapes(out0: &[usize], out1: &[usize], joints: usize) -> Result<()> {
    if out0.len() != 4 || out0[0] != 1 || out0[1] != 2 * joints || out0[2] == 0 || out0[3] == 0 {
        bail!("LitePose out0 has shape {out0:?}, expected [1, {}, H/4, W/4]", 2 * joints);
    }
    if out1.len() != 4 || out1[0] != 1 || out1[1] != joints || out1[2] == 0 || out1[3] == 0 {
        bail!("LitePose out1 has shape {out1:?}, expected [1, {joints}, H/2, W/2]");
    }
    Ok(())
}

/// inference.py `get_multi_stage_outputs` for one pass, at out1's resolution: 2J planes,
/// heatmaps ((out0 heatmaps resized + out1) / 2) then tags (out0 tags resized). With `flip`
/// (the outputs of the flipped input) the maps are flipped back and their joints permuted.
fn stage_outputs(out0: &Tensor, out1: &Tensor, jn: usize, flip: Option<&[usize]>) -> Result<Vec<f32>> {
    check_shapes(&out0.shape, &out1.shape, jn)?;
    let (Some(o0), Some(o1)) = (out0.as_f32(), out1.as_f32()) else { bail!("LitePose outputs must be float32") };
    let (h0, w0) = (out0.shape[2], out0.shape[3]);
    let (h1, w1) = (out1.shape[2], out1.shape[3]);
    let plane = h1 * w1;
    let mut maps = resize_bilinear(o0, 2 * jn, h0, w0, h1, w1);
    // heatmaps_avg = 0; += out0 heatmaps; += out1; / 2. Flipping and permuting channels move
    // values without changing them, so averaging before flipping gives the same numbers.
    for (a, &b) in maps[..jn * plane].iter_mut().zip(o1) {
        *a = (*a + b) / 2.0;
    }
    if let Some(index) = flip {
        flip_horizontal(&mut maps, w1);
        let (hm, tag) = maps.split_at(jn * plane);
        let mut out = permute_planes(hm, plane, index);
        out.extend_from_slice(&permute_planes(tag, plane, index));
        return Ok(out);
    }
    Ok(maps)
}

/// The full official path from raw LitePose outputs to people in source pixels.
///
/// `out0`: [1, 2J, H/4, W/4] (J heatmaps then J tag maps), `out1`: [1, J, H/2, W/2];
/// `flipped`: the same two outputs for the horizontally flipped input (flip test). People come
/// in the matcher's order with the official score (mean joint score before refinement); none
/// is dropped. Keypoints are in schema order; a joint that was neither found nor refined has
/// score 0. The box spans the joints with a positive score. For a stream of frames,
/// [`Decoder`] does the same while reusing its buffers.
pub fn decode(
    out0: &Tensor,
    out1: &Tensor,
    flipped: Option<(&Tensor, &Tensor)>,
    t: &Transform,
    params: &GroupingParams,
) -> Result<Vec<Person>> {
    Decoder::new(*params).decode(out0, out1, flipped, t)
}

/// [`decode`] with buffers kept between calls (the input-resolution maps are tens of MB).
#[derive(Debug, Clone)]
pub struct Decoder {
    pub params: GroupingParams,
    maps: Vec<f32>,
}

impl Decoder {
    pub fn new(params: GroupingParams) -> Decoder {
        Decoder { params, maps: Vec::new() }
    }

    /// See [`decode`].
    pub fn decode(
        &mut self,
        out0: &Tensor,
        out1: &Tensor,
        flipped: Option<(&Tensor, &Tensor)>,
        t: &Transform,
    ) -> Result<Vec<Person>> {
        let params = &self.params;
        params.validate()?;
        let jn = params.joints;
        check_shapes(&out0.shape, &out1.shape, jn)?;
        let (h1, w1) = (out1.shape[2], out1.shape[3]);
        let (h, w) = if params.project_to_image { (t.input_h, t.input_w) } else { (h1, w1) };
        ensure!(h > 0 && w > 0, "empty input size");
        let (p1, plane) = (h1 * w1, h * w);
        let d = if flipped.is_some() { 2 } else { 1 };
        // PROJECT2IMAGE resizes heatmaps and tags to the input size. Layout of `maps`: heatmaps
        // (J), tags of the plain pass (J), then with the flip test the flipped pass's tags (J)
        // and heatmaps (J). Every value is overwritten below, so the old contents can stay.
        self.maps.resize(2 * d * jn * plane, 0.0);
        let maps = &mut self.maps[..2 * d * jn * plane];
        let plain = stage_outputs(out0, out1, jn, None)?;
        resize_bilinear_into(&plain, 2 * jn, h1, w1, h, w, &mut maps[..2 * jn * plane]);
        if let Some((f0, f1)) = flipped {
            ensure!(
                f0.shape == out0.shape && f1.shape == out1.shape,
                "flipped outputs differ in shape from the plain ones"
            );
            let fl = stage_outputs(f0, f1, jn, Some(params.flip_index))?;
            let (heat, rest) = maps.split_at_mut(jn * plane);
            let (flip_tags, flip_heat) = rest[jn * plane..].split_at_mut(jn * plane);
            resize_bilinear_into(&fl[jn * p1..], jn, h1, w1, h, w, flip_tags);
            resize_bilinear_into(&fl[..jn * p1], jn, h1, w1, h, w, flip_heat);
            // aggregate_results: (heatmaps + flipped heatmaps) / 2.0; tags are kept side by side.
            for (a, &b) in heat.iter_mut().zip(flip_heat.iter()) {
                *a = (*a + b) / 2.0;
            }
        }
        let heatmaps = &maps[..jn * plane];
        let tags = &maps[jn * plane..(1 + d) * jn * plane];
        Ok(to_people(group(heatmaps, tags, h, w, params), t, h, w))
    }
}

/// get_final_preds: heatmap pixels (at h x w) -> input pixels -> source pixels.
fn to_people(grouped: Vec<GroupedPerson>, t: &Transform, h: usize, w: usize) -> Vec<Person> {
    let (sx, sy) = (t.input_w as f32 / w as f32, t.input_h as f32 / h as f32);
    grouped
        .into_iter()
        .map(|g| {
            let keypoints: Vec<Keypoint> = g
                .joints
                .iter()
                .map(|&(x, y, score)| {
                    let (fx, fy) = t.to_source(x * sx, y * sy);
                    Keypoint { x: fx, y: fy, score }
                })
                .collect();
            let mut bbox = [f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY];
            for k in keypoints.iter().filter(|k| k.score > 0.0) {
                bbox = [bbox[0].min(k.x), bbox[1].min(k.y), bbox[2].max(k.x), bbox[3].max(k.y)];
            }
            if !bbox[0].is_finite() {
                bbox = [0.0; 4];
            }
            Person { keypoints, bbox, score: g.score, track_id: None }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }


    #[test]
    fn bilinear_matches_pytorch_align_corners_false() {
        // F.interpolate(torch.tensor([[[[1., 2.], [3., 4.]]]]), size=(4, 4), mode='bilinear',
        // align_corners=False)
        let up = resize_bilinear(&[1.0, 2.0, 3.0, 4.0], 1, 2, 2, 4, 4);
        #[rustfmt::skip]
        let want = [
            1.0, 1.25, 1.75, 2.0,
            1.5, 1.75, 2.25, 2.5,
            2.5, 2.75, 3.25, 3.5,
            3.0, 3.25, 3.75, 4.0,
        ];
        assert_eq!(up, want);
        // Downscaling by 2 averages pairs (source positions 0.5 and 2.5).
        assert_eq!(resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 1, 1, 4, 1, 2), [0.5, 2.5]);
        // 3 -> 5: scale 0.6, source positions -0.2 (clamped to 0), 0.4, 1.0, 1.6, 2.2 (clamped tap).
        let up = resize_bilinear(&[0.0, 10.0, 20.0], 1, 1, 3, 1, 5);
        assert!(close(&up, &[0.0, 4.0, 10.0, 16.0, 20.0], 1e-5), "{up:?}");
        // Same size: a copy. Two channels stay apart.
        assert_eq!(resize_bilinear(&[1.0, 2.0, 3.0, 4.0], 2, 1, 2, 1, 2), [1.0, 2.0, 3.0, 4.0]);
        let up = resize_bilinear(&[0.0, 0.0, 8.0, 8.0], 2, 1, 2, 1, 4);
        assert_eq!(up, [0.0, 0.0, 0.0, 0.0, 8.0, 8.0, 8.0, 8.0]);
    }

    #[test]
    fn bilinear_matches_the_formula_on_random_maps() {
        let mut rng = SplitMix64(3);
        for &(ih, iw, oh, ow) in &[(5, 7, 10, 14), (6, 4, 13, 9), (9, 9, 4, 5), (3, 8, 3, 16), (7, 5, 7, 5)] {
            let src: Vec<f32> = (0..2 * ih * iw).map(|_| rng.unit_f32() * 4.0 - 2.0).collect();
            let got = resize_bilinear(&src, 2, ih, iw, oh, ow);
            // numpy-style reference in float64.
            let taps = |inp: usize, out: usize, i: usize| {
                let s = ((i as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0);
                let i0 = (s.floor() as usize).min(inp - 1);
                let i1 = (i0 + 1).min(inp - 1);
                (i0, i1, s - i0 as f64)
            };
            for c in 0..2 {
                for y in 0..oh {
                    let (y0, y1, ly) = taps(ih, oh, y);
                    for x in 0..ow {
                        let (x0, x1, lx) = taps(iw, ow, x);
                        let v = |yy: usize, xx: usize| src[c * ih * iw + yy * iw + xx] as f64;
                        let want = (1.0 - ly) * ((1.0 - lx) * v(y0, x0) + lx * v(y0, x1))
                            + ly * ((1.0 - lx) * v(y1, x0) + lx * v(y1, x1));
                        let g = got[c * oh * ow + y * ow + x] as f64;
                        assert!((g - want).abs() < 1e-5, "{ih}x{iw}->{oh}x{ow} c{c} ({y},{x}): {g} vs {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn nms_keeps_window_maxima_and_ties() {
        let (h, w) = (7, 8);
        let mut m = vec![0f32; h * w];
        let mut set = |y: usize, x: usize, v: f32| m[y * w + x] = v;
        set(3, 3, 1.0); // the peak
        set(5, 5, 0.9); // within 2 px of (3, 3) (diagonal corner of the 5x5 window): suppressed
        set(6, 6, 0.7); // next to (5, 5), which is larger: suppressed
        set(0, 0, 0.5); // 3 rows from (3, 3): outside its window, kept
        set(0, 6, 0.6); // equal plateau: both kept
        set(0, 7, 0.6);
        let out = nms(&m, h, w, 5, 2);
        let kept: Vec<(usize, usize, f32)> =
            (0..h * w).filter(|&i| out[i] != 0.0).map(|i| (i / w, i % w, out[i])).collect();
        assert_eq!(kept, vec![(0, 0, 0.5), (0, 6, 0.6), (0, 7, 0.6), (3, 3, 1.0)]);
        // top-k: by value, ties in pixel order, threshold is strict, k truncates.
        assert_eq!(top_k(&out, 30, 0.1), vec![(27, 1.0), (6, 0.6), (7, 0.6), (0, 0.5)]);
        assert_eq!(top_k(&out, 2, 0.1), vec![(27, 1.0), (6, 0.6)]);
        assert_eq!(top_k(&out, 30, 0.5), vec![(27, 1.0), (6, 0.6), (7, 0.6)]);
        // Kernel 3: (5, 5) is now 2 px from (3, 3) and survives; (6, 6) still does not.
        let out3 = nms(&m, h, w, 3, 1);
        assert_eq!(out3[5 * w + 5], 0.9);
        assert_eq!(out3[6 * w + 6], 0.0);
    }

    #[test]
    fn fast_peaks_equal_nms_then_threshold() {
        let mut rng = SplitMix64(11);
        for case in 0..40 {
            let (h, w) = (9 + case % 7, 11 + case % 5);
            // Coarse values make plateaus common.
            let mut m: Vec<f32> = (0..h * w).map(|_| (rng.unit_f32() * 8.0).floor() / 8.0).collect();
            if case % 3 == 0 {
                m[rng.next_u64() as usize % (h * w)] = f32::NAN;
            }
            for thr in [0.0, 0.1, 0.5] {
                let slow = top_k(&nms(&m, h, w, 5, 2), usize::MAX, thr);
                let fast = best_k(peaks_above(&m, h, w, 5, 2, thr), usize::MAX);
                assert_eq!(slow, fast, "case {case} threshold {thr}");
            }
        }
        // The float32 threshold stands for the float64 comparison exactly.
        let t = f32_below(0.1);
        assert!(t as f64 <= 0.1 && f32::from_bits(t.to_bits() + 1) as f64 > 0.1);
        assert_eq!(next_down_f32(1.0), 1.0 - f32::EPSILON / 2.0);
        assert_eq!(next_down_f32(-1.0), -1.0 - f32::EPSILON);
        assert!(0.1f32 > t, "0.1f32 (0.10000000149) is above the Python float 0.1");
    }

    #[test]
    fn numpy_pairwise_sums() {
        let a: [f32; 17] = [1e8, 1.0, 3.0, 5.0, -1e8, 7.0, 0.1, 0.2, 0.3, 1e7, 0.5, 3.0, -1e7, 0.25, 0.125, 9.0, 11.0];
        // np.float32 array .sum() and .mean() (numpy 2.4), as bit patterns.
        assert_eq!(pairwise_sum_f32(&a[..5]), 8.0);
        assert_eq!(pairwise_sum_f32(&a[..8]), 16.0); // sequential would give 15.3
        assert_eq!(pairwise_sum_f32(&a[..9]).to_bits(), 1099064934);
        assert_eq!(pairwise_sum_f32(&a[..16]), 24.0); // sequential: 28.375
        assert_eq!(pairwise_sum_f32(&a).to_bits(), 1108082688);
        assert_eq!(((0.0 + pairwise_sum_f32(&a)) / 17.0).to_bits(), 1073988548);
        // np.mean(list of 1-element float32 arrays, axis=0) and of 2-element ones.
        let one: Vec<f32> = a[..12].to_vec();
        assert_eq!(mean_tag(&one, 1)[0].to_bits(), 1229681519);
        let two: Vec<f32> = a[..12].iter().flat_map(|&x| [x, x * 2.0]).collect();
        let m = mean_tag(&two, 2);
        assert_eq!((m[0].to_bits(), m[1].to_bits()), (1229681519, 1238070127));
    }

    #[test]
    fn adjust_moves_a_quarter_pixel_toward_the_higher_neighbour() {
        let (h, w) = (5, 5);
        let mut m = vec![0f32; h * w];
        m[2 * w + 2] = 1.0;
        m[2 * w + 3] = 0.5; // right > left (0.2): x + 0.25
        m[2 * w + 1] = 0.2;
        m[w + 2] = 0.6; // up (0.6) > down (0.1): y - 0.25
        m[3 * w + 2] = 0.1;
        assert_eq!(adjust_joint(&m, h, w, 2, 2), (2.75, 2.25));
        // Equal neighbours go down (- 0.25); at the border the pixel itself stands in.
        let flat = vec![0.3f32; h * w];
        assert_eq!(adjust_joint(&flat, h, w, 0, 4), (0.25, 4.25));
        let mut edge = vec![0f32; h * w];
        edge[1] = 0.5; // right of (0, 0) is higher than (0, 0) itself
        assert_eq!(adjust_joint(&edge, h, w, 0, 0), (0.75, 0.25));
    }

    /// Maps for `group` with J = 17: heatmap peaks (joint, y, x, value) and the tag at each
    /// peak (tags elsewhere are 0).
    fn maps(h: usize, w: usize, peaks: &[(usize, usize, usize, f32, f32)]) -> (Vec<f32>, Vec<f32>) {
        let plane = h * w;
        let mut hm = vec![0f32; 17 * plane];
        let mut tags = vec![0f32; 17 * plane];
        for &(j, y, x, v, t) in peaks {
            hm[j * plane + y * w + x] = v;
            tags[j * plane + y * w + x] = t;
        }
        (hm, tags)
    }

    #[test]
    fn refine_fills_missing_joints_from_the_mean_tag() {
        let (h, w) = (8, 8);
        let (hm, tags) = maps(
            h,
            w,
            &[
                (0, 2, 2, 0.8, 0.0),  // person A's nose (tag 0)
                (1, 1, 1, 0.9, 5.0),  // another person's left eye (tag 5): starts person B
                (1, 4, 3, 0.08, 0.2), // below the detection threshold: refine finds it for A
            ],
        );
        let people = group(&hm, &tags, h, w, &GroupingParams::coco());
        assert_eq!(people.len(), 2);
        let (a, b) = (&people[0], &people[1]);
        // A: nose adjusted toward its higher neighbours (all equal: - 0.25 each way).
        assert_eq!(a.joints[0], (2.25, 2.25, 0.8));
        // A's left eye: argmax(det - round(|tag - 0|)): (4, 3) with 0.08 beats the background
        // (0 - 0) and (1, 1) (0.9 - 5); both neighbours equal: - 0.25 each way.
        assert_eq!(a.joints[1], (3.25, 4.25, 0.08));
        // B (tag 5) takes the best nose by det - round(|tag - 5|): A's nose (0.8 - 5 = -4.2)
        // beats every background pixel (0 - 5); its value 0.8 > 0 so it is filled in too.
        assert_eq!(b.joints[1], (1.25, 1.25, 0.9));
        assert_eq!(b.joints[0], (2.25, 2.25, 0.8));
        // Scores are the mean joint score before refinement.
        assert_eq!(a.score, 0.8 / 17.0);
        assert_eq!(b.score, 0.9 / 17.0);
        // Without refine the missing joints stay empty; without adjust positions are pixel indices.
        let plain = GroupingParams { refine: false, adjust: false, ..GroupingParams::coco() };
        let people = group(&hm, &tags, h, w, &plain);
        assert_eq!(people[0].joints[0], (2.0, 2.0, 0.8));
        assert_eq!(people[0].joints[1], (0.0, 0.0, 0.0));
    }

    #[test]
    fn matching_follows_tags_threshold_and_dictionary_keys() {
        let (h, w) = (12, 12);
        let p = GroupingParams { refine: false, adjust: false, ..GroupingParams::coco() };
        // Two people (tags 1 and 4); the right eyes come in the other order.
        let (hm, tags) = maps(
            h,
            w,
            &[
                (0, 2, 2, 0.9, 1.0),
                (0, 2, 9, 0.8, 4.0),
                (2, 3, 9, 0.7, 4.2),
                (2, 3, 2, 0.6, 0.9),
                (5, 6, 5, 0.5, 2.6), // 1.6 from tag 1 and 1.4 from tag 4: a new person
            ],
        );
        let people = group(&hm, &tags, h, w, &p);
        assert_eq!(people.len(), 3);
        assert_eq!((people[0].joints[0], people[0].joints[2]), ((2.0, 2.0, 0.9), (2.0, 3.0, 0.6)));
        assert_eq!((people[1].joints[0], people[1].joints[2]), ((9.0, 2.0, 0.8), (9.0, 3.0, 0.7)));
        assert_eq!(people[2].joints[5], (5.0, 6.0, 0.5));
        // group.py keys people by the first tag value of their first joint: a plateau of two
        // equal peaks with the same tag makes one person, the later pixel overwriting the first.
        let (hm, tags) = maps(h, w, &[(0, 5, 5, 0.8, 1.0), (0, 5, 6, 0.8, 1.0)]);
        let people = group(&hm, &tags, h, w, &p);
        assert_eq!(people.len(), 1);
        assert_eq!(people[0].joints[0], (6.0, 5.0, 0.8));
        // ignore_too_much: with max_people people grouped, later joint types are skipped.
        let few = GroupingParams { max_people: 2, ignore_too_much: true, ..p };
        let (hm, tags) = maps(h, w, &[(0, 2, 2, 0.9, 1.0), (0, 2, 9, 0.8, 4.0), (2, 3, 9, 0.7, 4.2)]);
        let people = group(&hm, &tags, h, w, &few);
        assert_eq!(people.len(), 2);
        assert!(people.iter().all(|q| q.joints[2].2 == 0.0));
    }

    #[test]
    fn tiled_refine_argmax_equals_the_full_scan() {
        let mut rng = SplitMix64(5);
        for case in 0..30 {
            let (h, w) = (20 + case % 13, 17 + case % 29);
            let d = 1 + case % 2;
            let hm: Vec<f32> = (0..h * w).map(|_| (rng.unit_f32() * 6.0).floor() / 4.0 - 0.2).collect();
            let tags: Vec<Vec<f32>> = (0..d).map(|_| (0..h * w).map(|_| rng.unit_f32() * 3.0).collect()).collect();
            let planes: Vec<&[f32]> = tags.iter().map(|t| t.as_slice()).collect();
            let prev: Vec<f32> = (0..d).map(|_| rng.unit_f32() * 3.0).collect();
            let mut index = RefineIndex::new(1, w);
            let fast = refine_argmax(&mut index, 0, &hm, &planes, &prev, h, w).unwrap();
            assert_eq!(fast, refine_argmax_full(&hm, &planes, &prev), "case {case}");
        }
    }

    #[test]
    fn decode_maps_heatmap_pixels_to_source_pixels() {
        // Input 64 x 32 for a 128 x 64 frame (scale 2); out1 32 x 16, out0 16 x 8.
        let t = Transform { input_w: 64, input_h: 32, frame_w: 128, frame_h: 64, scale_x: 2.0, scale_y: 2.0, offset_x: 0.0, offset_y: 0.0 };
        let jn = 17;
        let mut o1 = vec![0f32; jn * 16 * 32];
        let o0 = vec![0f32; 2 * jn * 8 * 16];
        // A bump for the nose at out1 pixel (x 10, y 5), higher on the right and below.
        for (dy, dx, v) in [(0, 0, 1.0), (0, 1, 0.6), (0, -1, 0.4), (1, 0, 0.5), (-1, 0, 0.3)] {
            o1[(5 + dy) as usize * 32 + (10 + dx) as usize] = v;
        }
        let out0 = Tensor::f32(vec![1, 2 * jn, 8, 16], o0);
        let out1 = Tensor::f32(vec![1, jn, 16, 32], o1);
        for project in [true, false] {
            let p = GroupingParams { project_to_image: project, ..GroupingParams::coco() };
            let people = decode(&out0, &out1, None, &t, &p).unwrap();
            assert_eq!(people.len(), 1, "project {project}");
            let nose = people[0].keypoints[0];
            // Heatmaps are (out0 + out1) / 2 = out1 / 2 here.
            // Not projected: pixel (10, 5), right and lower neighbours higher: (10.75, 5.75) in
            // out1 pixels, x2 to input pixels, x2 to source pixels.
            // Projected (x2 bilinear): columns 20, 21, 22 sample out1 at 9.75, 10.25, 10.75, so
            // the peak is column 21 with column 20 (0.85 / 2) above column 22 (0.7 / 2): 21 + 0.5
            // - 0.25; rows 10, 11, 12 sample 4.75, 5.25, 5.75: row 11 (0.875 / 2) with row 10
            // (0.825 / 2) above row 12 (0.625 / 2): 11 + 0.5 - 0.25. Then x2 to source pixels.
            let want = if project { (21.25 * 2.0, 11.25 * 2.0) } else { (10.75 * 4.0, 5.75 * 4.0) };
            assert_eq!((nose.x, nose.y), want, "project {project}");
            assert_eq!(people[0].bbox, [want.0, want.1, want.0, want.1]);
            assert_eq!(people[0].keypoints.len(), 17);
            // The score is the heatmap value there: out1 / 2, bilinearly resized when projected
            // ((0.75 * (0.75 * 1.0 + 0.25 * 0.6) + 0.25 * (0.75 * 0.5)) / 2).
            let score = if project { 0.384375 } else { 0.5 };
            assert!((nose.score - score).abs() < 1e-6, "{}", nose.score);
            assert_eq!(people[0].score, nose.score / 17.0);
        }
        assert!(decode(&out1, &out0, None, &t, &GroupingParams::coco()).is_err());
    }
}
