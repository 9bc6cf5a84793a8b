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

/// Horizontal-flip joint permutation for COCO17: joint `j` of a flipped picture is joint
/// `COCO17_FLIP_INDEX[j]` of the original (LitePose lib/dataset/transforms/build.py, FLIP_CONFIG['COCO']).
pub const COCO17_FLIP_INDEX: [usize; 17] = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15];

/// CrowdPose's 14 joints, in the order of its annotation files (crowdpose_{train,val,test}.json).
pub const CROWDPOSE14: Schema = Schema {
    name: "crowdpose14",
    joints: &[
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
        "head",
        "neck",
    ],
    // The CrowdPose json files carry COCO's 17-joint skeleton list unchanged (indices up to 17,
    // meaningless for 14 joints), so these limbs are drawn anatomically instead.
    limbs: &[
        (12, 13),
        (13, 0),
        (13, 1),
        (0, 2),
        (2, 4),
        (1, 3),
        (3, 5),
        (0, 6),
        (1, 7),
        (6, 7),
        (6, 8),
        (8, 10),
        (7, 9),
        (9, 11),
    ],
};

/// Horizontal-flip joint permutation for CrowdPose (FLIP_CONFIG['CROWDPOSE'] in LitePose).
pub const CROWDPOSE14_FLIP_INDEX: [usize; 14] = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13];

/// CrowdPose keypoint sigmas (OKS) as crowdposetools uses them, in CROWDPOSE14 order.
pub const CROWDPOSE14_SIGMAS: [f32; 14] =
    [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079];

pub fn by_name(name: &str) -> Option<Schema> {
    match name {
        "coco17" => Some(COCO17),
        "crowdpose14" => Some(CROWDPOSE14),
        _ => None,
    }
}

/// A schema's OKS sigmas (COCO's, CrowdPose's), when published.
pub fn oks_sigmas(schema: &Schema) -> Option<&'static [f32]> {
    match schema.name {
        "coco17" => Some(&COCO17_SIGMAS),
        "crowdpose14" => Some(&CROWDPOSE14_SIGMAS),
        _ => None,
    }
}

/// The official horizontal-flip joint permutation of a schema, when one is defined.
pub fn flip_index(schema: &Schema) -> Option<&'static [usize]> {
    match schema.name {
        "coco17" => Some(&COCO17_FLIP_INDEX),
        "crowdpose14" => Some(&CROWDPOSE14_FLIP_INDEX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_indices_swap_left_and_right() {
        for schema in [COCO17, CROWDPOSE14] {
            let flip = flip_index(&schema).unwrap();
            assert_eq!(flip.len(), schema.joints.len());
            for (j, &f) in flip.iter().enumerate() {
                assert_eq!(flip[f], j, "{}: not an involution", schema.name);
                let name = schema.joints[j];
                let want = if let Some(rest) = name.strip_prefix("left_") {
                    format!("right_{rest}")
                } else if let Some(rest) = name.strip_prefix("right_") {
                    format!("left_{rest}")
                } else {
                    name.to_string()
                };
                assert_eq!(schema.joints[f], want, "{}", schema.name);
            }
            for &(a, b) in schema.limbs {
                assert!(a < schema.joints.len() && b < schema.joints.len());
            }
            assert_eq!(by_name(schema.name), Some(schema));
        }
    }
}
