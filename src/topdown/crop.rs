//! A person's crop: a square around their box, which may reach past the frame (black there).

/// A square region of the source frame: corner and side, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    pub x0: f32,
    pub y0: f32,
    pub side: f32,
}

impl Crop {
    /// The square of `scale` times the box's longer side, centred on the box (at least 1 pixel).
    pub fn around(bbox: &[f32; 4], scale: f32) -> Crop {
        let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
        let side = (scale * (bbox[2] - bbox[0]).max(bbox[3] - bbox[1])).max(1.0);
        Crop { x0: cx - side / 2.0, y0: cy - side / 2.0, side }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squares_are_centred_on_the_box() {
        let c = Crop::around(&[100.0, 50.0, 140.0, 250.0], 1.1);
        assert!((c.side - 220.0).abs() < 1e-4);
        assert!((c.x0 + c.side / 2.0 - 120.0).abs() < 1e-4 && (c.y0 + c.side / 2.0 - 150.0).abs() < 1e-4);
        assert_eq!(Crop::around(&[5.0, 5.0, 5.0, 5.0], 1.1).side, 1.0);
    }
}
