//! Steady masks: the person probability averaged over time where it changes little (noise, the
//! flicker of a still person's outline), taken as it is where it changes a lot (a person moving),
//! so still regions calm down without a ghost trailing a moving person.

use crate::detections::Mask;
use crate::preprocess::FrameOnGrid;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskSmoothing {
    /// Time constant (seconds) of the average where the probability changes little.
    pub time_constant_s: f32,
    /// Changes up to this are averaged at the full time constant ...
    pub calm_below: f32,
    /// ... changes from this on are taken whole; in between, in proportion.
    pub follow_above: f32,
}

impl Default for MaskSmoothing {
    /// Chosen by measurement on the tracking test sequences (docs/tracking.md).
    fn default() -> Self {
        MaskSmoothing { time_constant_s: 0.2, calm_below: 0.1, follow_above: 0.7 }
    }
}

#[derive(Default)]
pub struct MaskFilter {
    state: Option<(Vec<f32>, usize, usize, FrameOnGrid, f64)>,
}

impl MaskFilter {
    /// Smooths `mask` (seen at `t` seconds) in place against the masks before it. A mask of
    /// another size or placement starts afresh.
    pub fn apply(&mut self, mask: &mut Mask, t: f64, p: &MaskSmoothing) {
        let fresh = |m: &Mask| Some((m.probs.clone(), m.width, m.height, m.region, t));
        let Some((prev, w, h, region, t0)) = self.state.as_mut() else {
            self.state = fresh(mask);
            return;
        };
        if (*w, *h, *region) != (mask.width, mask.height, mask.region) || prev.len() != mask.probs.len() {
            self.state = fresh(mask);
            return;
        }
        let dt = ((t - *t0) as f32).max(1e-3);
        let calm = 1.0 - (-dt / p.time_constant_s.max(1e-3)).exp();
        let span = (p.follow_above - p.calm_below).max(1e-3);
        for (s, m) in prev.iter_mut().zip(mask.probs.iter_mut()) {
            let d = *m - *s;
            let follow = ((d.abs() - p.calm_below) / span).clamp(0.0, 1.0);
            let a = calm + (1.0 - calm) * follow;
            *s += a * d;
            *m = *s;
        }
        *t0 = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(probs: Vec<f32>) -> Mask {
        let n = probs.len();
        Mask { width: n, height: 1, probs, region: FrameOnGrid::full(n, 1) }
    }

    #[test]
    fn noise_is_calmed_and_a_moving_edge_is_followed_at_once() {
        let p = MaskSmoothing::default();
        let mut f = MaskFilter::default();
        let mut rng = crate::rng::SplitMix64(5);
        let (mut raw, mut out) = (0.0, 0.0);
        let (mut prev_raw, mut prev_out) = (vec![0.0; 64], vec![0.0; 64]);
        for i in 0..50 {
            let r: Vec<f32> = (0..64).map(|_| 0.8 + (rng.unit_f32() - 0.5) * 0.1).collect();
            let mut m = mask(r.clone());
            f.apply(&mut m, i as f64 / 25.0, &p);
            if i > 0 {
                raw += r.iter().zip(&prev_raw).map(|(a, b)| (a - b).abs()).sum::<f32>();
                out += m.probs.iter().zip(&prev_out).map(|(a, b)| (a - b).abs()).sum::<f32>();
            }
            prev_raw = r;
            prev_out = m.probs;
        }
        assert!(out < 0.5 * raw, "smoothed {out} raw {raw}");
        // A person steps in: 0 -> 1 shows at once.
        let mut m = mask(vec![0.0; 64]);
        let mut f = MaskFilter::default();
        f.apply(&mut m, 0.0, &p);
        let mut m = mask(vec![1.0; 64]);
        f.apply(&mut m, 0.04, &p);
        assert!(m.probs.iter().all(|&v| v == 1.0));
        // Another size starts afresh.
        let mut m = mask(vec![0.3; 8]);
        f.apply(&mut m, 0.08, &p);
        assert!(m.probs.iter().all(|&v| v == 0.3));
    }
}
