//! Where a tracked person's box will be: constant velocity of its centre and size, the velocity
//! an exponential average of the observed one (so one noisy box does not fling the prediction).

/// Centre, size and their rates of change, in source pixels and pixels per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoxMotion {
    /// [cx, cy, w, h] at `t`.
    pub state: [f32; 4],
    pub velocity: [f32; 4],
    pub t: f64,
}

/// Weight of the newest observed velocity.
const VELOCITY_GAIN: f32 = 0.2;
/// Steps shorter than this give no velocity (repeated timestamps).
const MIN_DT: f64 = 1e-3;

pub fn centre_size(b: &[f32; 4]) -> [f32; 4] {
    [(b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5, (b[2] - b[0]).max(0.0), (b[3] - b[1]).max(0.0)]
}

pub fn corners(s: &[f32; 4]) -> [f32; 4] {
    let (hw, hh) = (s[2].max(0.0) * 0.5, s[3].max(0.0) * 0.5);
    [s[0] - hw, s[1] - hh, s[0] + hw, s[1] + hh]
}

impl BoxMotion {
    pub fn new(bbox: &[f32; 4], t: f64) -> BoxMotion {
        BoxMotion { state: centre_size(bbox), velocity: [0.0; 4], t }
    }

    /// [cx, cy, w, h] predicted at time `t`.
    pub fn predict(&self, t: f64) -> [f32; 4] {
        let dt = (t - self.t).max(0.0) as f32;
        let mut s = self.state;
        for i in 0..4 {
            s[i] += self.velocity[i] * dt;
        }
        s[2] = s[2].max(1.0);
        s[3] = s[3].max(1.0);
        s
    }

    /// Takes the box observed at `t`.
    pub fn observe(&mut self, bbox: &[f32; 4], t: f64) {
        let obs = centre_size(bbox);
        let dt = t - self.t;
        if dt >= MIN_DT {
            for i in 0..4 {
                let v = (obs[i] - self.state[i]) / dt as f32;
                self.velocity[i] += VELOCITY_GAIN * (v - self.velocity[i]);
            }
        }
        self.state = obs;
        self.t = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_constant_velocity_and_extrapolates_it() {
        let mut m = BoxMotion::new(&[0.0, 0.0, 10.0, 20.0], 0.0);
        for i in 1..=20 {
            let t = i as f64 * 0.1;
            let x = 30.0 * t as f32; // 30 px/s to the right
            m.observe(&[x, 0.0, x + 10.0, 20.0], t);
        }
        let p = m.predict(2.5);
        assert!((p[0] - (75.0 + 5.0)).abs() < 0.5, "{p:?}");
        assert!((p[2] - 10.0).abs() < 1e-3 && (p[3] - 20.0).abs() < 1e-3);
        assert_eq!(corners(&centre_size(&[1.0, 2.0, 5.0, 8.0])), [1.0, 2.0, 5.0, 8.0]);
    }

    #[test]
    fn repeated_timestamps_do_not_blow_up() {
        let mut m = BoxMotion::new(&[0.0, 0.0, 10.0, 10.0], 1.0);
        m.observe(&[5.0, 0.0, 15.0, 10.0], 1.0);
        assert!(m.velocity.iter().all(|v| v.is_finite() && *v == 0.0));
        assert_eq!(m.predict(0.5), m.state);
    }
}
