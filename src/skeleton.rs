//! Keypoint schemas: joint names and the limbs drawn between them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    pub name: &'static str,
    pub joints: &'static [&'static str],
    /// Pairs of joint indices joined by a limb.
    pub limbs: &'static [(usize, usize)],
}

pub const COCO17: Schema = Schema {
    name: "coco17",
    joints: &[
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ],
    // COCO's skeleton (1-based in the annotation files), 0-based here.
    limbs: &[
        (15, 13),
        (13, 11),
        (16, 14),
        (14, 12),
        (11, 12),
        (5, 11),
        (6, 12),
        (5, 6),
        (5, 7),
        (6, 8),
        (7, 9),
        (8, 10),
        (1, 2),
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 4),
        (3, 5),
        (4, 6),
    ],
};

/// COCO keypoint sigmas (OKS), in COCO17 joint order.
pub const COCO17_SIGMAS: [f32; 17] = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
    0.089, 0.089,
];

pub fn by_name(name: &str) -> Option<Schema> {
    match name {
        "coco17" => Some(COCO17),
        _ => None,
    }
}
