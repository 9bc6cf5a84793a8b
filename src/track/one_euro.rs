//! The One-Euro filter (Casiez, Roussel, Vogel, CHI 2012): a low-pass filter whose cutoff rises
//! with speed, so a still joint is smoothed hard and a moving one follows without lag. Time comes
//! from timestamps, so skipped frames and variable frame rates only change the step `dt`.
//!
//! One addition: the caller may pass a drift, the velocity the whole person is known to move at
//! (its box's). The filter then smooths around the drifted previous value, so a person walking or
//! a panning camera is followed without lag while the joints' own noise is still damped; with a
//! drift of 0 it is the published filter.

/// The filter's parameters. Speeds are measured in person heights per second (the caller passes
/// the scale), so one set of values fits people near and far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneEuroParams {
    /// Cutoff frequency (Hz) when still: lower is smoother.
    pub min_cutoff: f32,
    /// How fast the cutoff rises with speed (Hz per height/s): higher is less lag.
    pub beta: f32,
    /// Cutoff frequency (Hz) of the speed estimate.
    pub d_cutoff: f32,
}

impl Default for OneEuroParams {
    /// Chosen by measurement on the tracking test sequences (docs/tracking.md).
    fn default() -> Self {
        OneEuroParams { min_cutoff: 1.0, beta: 15.0, d_cutoff: 1.0 }
    }
}

/// One scalar signal.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneEuro {
    state: Option<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    value: f32,
    speed: f32,
    t: f64,
}

/// Smoothing factor of an exponential filter with cutoff `fc` Hz over a step of `dt` seconds.
fn alpha(dt: f32, fc: f32) -> f32 {
    let tau = 1.0 / (2.0 * std::f32::consts::PI * fc.max(1e-3));
    dt / (dt + tau)
}

/// A step shorter than this (repeated or backwards timestamps) counts as this long.
const MIN_DT: f32 = 1e-3;

impl OneEuro {
    /// Filters `x` observed at time `t` (seconds); `scale` (pixels per person height) turns the
    /// speed into heights per second; `drift` (units per second) is the motion expected anyway.
    pub fn filter(&mut self, x: f32, t: f64, scale: f32, drift: f32, p: &OneEuroParams) -> f32 {
        let Some(s) = self.state.as_mut() else {
            self.state = Some(State { value: x, speed: 0.0, t });
            return x;
        };
        if !x.is_finite() {
            return s.value;
        }
        let dt = ((t - s.t) as f32).max(MIN_DT);
        let drift = if drift.is_finite() { drift } else { 0.0 };
        let expected = s.value + drift * dt;
        // The speed beyond the drift sets the cutoff.
        let speed = (x - expected) / dt;
        s.speed += alpha(dt, p.d_cutoff) * (speed - s.speed);
        let cutoff = p.min_cutoff + p.beta * s.speed.abs() / scale.max(1.0);
        s.value = expected + alpha(dt, cutoff) * (x - expected);
        s.t = t;
        s.value
    }

    /// Forgets the past: the next value passes unchanged.
    pub fn reset(&mut self) {
        self.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn smooths_noise_when_still_and_follows_motion() {
        let p = OneEuroParams::default();
        let mut rng = SplitMix64(7);
        let (mut raw_steps, mut smooth_steps) = (0.0, 0.0);
        let mut f = OneEuro::default();
        let (mut prev_raw, mut prev_out) = (100.0, 100.0);
        for i in 0..200 {
            let x = 100.0 + (rng.unit_f32() - 0.5) * 4.0;
            let y = f.filter(x, i as f64 / 25.0, 200.0, 0.0, &p);
            if i > 0 {
                raw_steps += (x - prev_raw as f32).abs();
                smooth_steps += (y - prev_out as f32).abs();
            }
            (prev_raw, prev_out) = (x, y);
        }
        assert!(smooth_steps < 0.5 * raw_steps, "smoothed {smooth_steps} raw {raw_steps}");

        // A person crossing the frame at one height per second: the lag stays small.
        let mut f = OneEuro::default();
        let mut last = (0.0, 0.0);
        for i in 0..50 {
            let t = i as f64 / 25.0;
            let x = 200.0 * t as f32;
            last = (x, f.filter(x, t, 200.0, 0.0, &p));
        }
        assert!((last.0 - last.1).abs() < 0.05 * 200.0, "lag {} px", last.0 - last.1);

        // With the motion given as drift, no lag at all, and noise on top is still damped.
        let mut f = OneEuro::default();
        let (mut worst, mut steps_raw, mut steps_out, mut prev) = (0.0f32, 0.0, 0.0, (0.0, 0.0));
        for i in 0..50 {
            let t = i as f64 / 25.0;
            let x = 200.0 * t as f32 + (rng.unit_f32() - 0.5) * 4.0;
            let y = f.filter(x, t, 200.0, 200.0, &p);
            if i > 10 {
                worst = worst.max((y - 200.0 * t as f32).abs());
                steps_raw += (x - prev.0 - 8.0f32).abs();
                steps_out += (y - prev.1 - 8.0f32).abs();
            }
            prev = (x, y);
        }
        assert!(worst < 2.0, "off by {worst} px");
        assert!(steps_out < 0.7 * steps_raw, "smoothed {steps_out} raw {steps_raw}");
    }

    #[test]
    fn first_value_and_reset_pass_through_and_bad_input_is_ignored() {
        let p = OneEuroParams::default();
        let mut f = OneEuro::default();
        assert_eq!(f.filter(5.0, 0.0, 100.0, 0.0, &p), 5.0);
        assert!(f.filter(f32::NAN, 0.04, 100.0, 0.0, &p) == 5.0);
        // The same timestamp twice does not divide by zero.
        assert!(f.filter(6.0, 0.04, 100.0, 0.0, &p).is_finite());
        f.reset();
        assert_eq!(f.filter(50.0, 1.0, 100.0, 0.0, &p), 50.0);
    }
}
