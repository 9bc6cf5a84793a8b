//! The one renderer every output shares: a translucent mask, then per-person skeletons
//! (limbs, joints, box) drawn onto an RGB frame with anti-aliased discs and capsules.

use crate::analyzer::Analysis;
use crate::detections::{ClassMap, Mask, Person};
use crate::frame::Frame;
use crate::glyphs;
use crate::skeleton::Schema;

/// Distinct colours for people: by track id when tracked (the same person keeps its colour),
/// else in the order they are listed.
pub const PERSON_COLOURS: [[u8; 3]; 10] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
    [250, 190, 212],
];

#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Joints below this score are not drawn (nor limbs touching them).
    pub keypoint_threshold: f32,
    /// Mask opacity at probability 1.
    pub mask_opacity: f32,
    pub mask_colour: [u8; 3],
}

impl Default for Style {
    fn default() -> Self {
        Style { keypoint_threshold: 0.3, mask_opacity: 0.5, mask_colour: [255, 40, 170] }
    }
}

pub struct Overlay<'a> {
    pub people: &'a [Person],
    pub schema: Option<Schema>,
    pub mask: Option<&'a Mask>,
    pub classes: Option<&'a ClassMap>,
}

impl<'a> Overlay<'a> {
    pub fn of(analysis: &'a Analysis, schema: Option<Schema>) -> Overlay<'a> {
        Overlay { people: &analysis.people, schema, mask: analysis.mask.as_ref(), classes: analysis.classes.as_ref() }
    }
}

/// Draws `overlay` onto `frame` in place.
pub fn draw(frame: &mut Frame, overlay: &Overlay, style: &Style) {
    if let Some(mask) = overlay.mask {
        blend_mask(frame, mask, style);
    }
    if let Some(classes) = overlay.classes {
        blend_classes(frame, classes, style);
    }
    let thickness = (frame.width.max(frame.height) as f32 / 400.0).max(1.5);
    for (i, person) in overlay.people.iter().enumerate() {
        let colour = person_colour(person, i);
        let [x0, y0, x1, y1] = person.bbox;
        for (a, b) in [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))] {
            capsule(frame, a, b, 0.75, colour, 0.6);
        }
        if let Some(id) = person.track_id {
            id_label(frame, id, (x0, y0), thickness, colour);
        }
        let kp = &person.keypoints;
        let visible = |j: usize| kp.get(j).is_some_and(|k| k.score >= style.keypoint_threshold);
        if let Some(schema) = overlay.schema {
            for &(a, b) in schema.limbs {
                if visible(a) && visible(b) {
                    capsule(frame, (kp[a].x, kp[a].y), (kp[b].x, kp[b].y), thickness, colour, 1.0);
                }
            }
        }
        for k in kp.iter().filter(|k| k.score >= style.keypoint_threshold) {
            capsule(frame, (k.x, k.y), (k.x, k.y), thickness * 2.0 + 1.0, [20, 20, 20], 1.0);
            capsule(frame, (k.x, k.y), (k.x, k.y), thickness * 2.0, colour, 1.0);
        }
    }
}

/// The colour a person is drawn in: by track id when tracked, else by its place in the list.
pub fn person_colour(person: &Person, index: usize) -> [u8; 3] {
    let k = match person.track_id {
        Some(id) => id.saturating_sub(1) as usize,
        None => index,
    };
    PERSON_COLOURS[k % PERSON_COLOURS.len()]
}

/// The track id in dark digits on a tag of the person's colour, just above the box's top-left
/// corner (inside the frame).
fn id_label(frame: &mut Frame, id: u64, corner: (f32, f32), thickness: f32, colour: [u8; 3]) {
    if !corner.0.is_finite() || !corner.1.is_finite() {
        return;
    }
    let px = (thickness.round() as usize).max(2); // frame pixels per font pixel
    let (w, h) = ((glyphs::width(id) + 2) * px, (glyphs::GLYPH_H + 2) * px);
    let x0 = (corner.0.max(0.0) as usize).min(frame.width.saturating_sub(w));
    let y0 = (corner.1 as isize - h as isize).max(0) as usize;
    for y in y0..(y0 + h).min(frame.height) {
        for x in x0..(x0 + w).min(frame.width) {
            let (fx, fy) = ((x - x0) / px, (y - y0) / px);
            let on = fx >= 1 && fy >= 1 && glyphs::lit(id, fx - 1, fy - 1);
            let c = if on { [20, 20, 20] } else { colour };
            frame.rgb[(y * frame.width + x) * 3..(y * frame.width + x) * 3 + 3].copy_from_slice(&c);
        }
    }
}

fn blend_mask(frame: &mut Frame, mask: &Mask, style: &Style) {
    let (fw, fh) = (frame.width, frame.height);
    // Per-column sample positions, shared by every row.
    let cols: Vec<(usize, usize, f32)> = (0..fw)
        .map(|x| {
            let m = mask.region.grid_pos(x as f32, 0.0, fw, fh).0.clamp(0.0, (mask.width - 1) as f32);
            let x0 = m as usize;
            (x0, (x0 + 1).min(mask.width - 1), m - x0 as f32)
        })
        .collect();
    let c = style.mask_colour.map(|v| v as f32);
    for y in 0..fh {
        let m = mask.region.grid_pos(0.0, y as f32, fw, fh).1.clamp(0.0, (mask.height - 1) as f32);
        let y0 = m as usize;
        let y1 = (y0 + 1).min(mask.height - 1);
        let ay = m - y0 as f32;
        let r0 = &mask.probs[y0 * mask.width..(y0 + 1) * mask.width];
        let r1 = &mask.probs[y1 * mask.width..(y1 + 1) * mask.width];
        let row = &mut frame.rgb[y * fw * 3..(y + 1) * fw * 3];
        for (px, &(x0, x1, ax)) in row.chunks_exact_mut(3).zip(&cols) {
            let top = r0[x0] + (r0[x1] - r0[x0]) * ax;
            let bot = r1[x0] + (r1[x1] - r1[x0]) * ax;
            let a = (top + (bot - top) * ay) * style.mask_opacity;
            if a > 0.004 {
                for ch in 0..3 {
                    px[ch] = (px[ch] as f32 + (c[ch] - px[ch] as f32) * a).round() as u8;
                }
            }
        }
    }
}

fn blend_classes(frame: &mut Frame, map: &ClassMap, style: &Style) {
    let (fw, fh) = (frame.width, frame.height);
    let a = style.mask_opacity;
    for y in 0..fh {
        for x in 0..fw {
            let label = map.label_at(x as f32, y as f32, fw, fh) as usize;
            let Some(c) = map.palette.get(label) else { continue };
            let px = &mut frame.rgb[(y * fw + x) * 3..(y * fw + x) * 3 + 3];
            for ch in 0..3 {
                px[ch] = (px[ch] as f32 + (c[ch] as f32 - px[ch] as f32) * a).round() as u8;
            }
        }
    }
}

/// Fills the set of points within `radius` of segment a-b, anti-aliased over one pixel.
fn capsule(frame: &mut Frame, a: (f32, f32), b: (f32, f32), radius: f32, colour: [u8; 3], opacity: f32) {
    if ![a.0, a.1, b.0, b.1, radius].iter().all(|v| v.is_finite()) {
        return;
    }
    let pad = radius + 1.0;
    let x_lo = (a.0.min(b.0) - pad).floor().max(0.0) as usize;
    let y_lo = (a.1.min(b.1) - pad).floor().max(0.0) as usize;
    let x_hi = ((a.0.max(b.0) + pad).ceil().max(0.0) as usize).min(frame.width);
    let y_hi = ((a.1.max(b.1) + pad).ceil().max(0.0) as usize).min(frame.height);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    for y in y_lo..y_hi {
        for x in x_lo..x_hi {
            let (px, py) = (x as f32 + 0.5 - a.0, y as f32 + 0.5 - a.1);
            let t = if len2 > 0.0 { ((px * dx + py * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
            let (ex, ey) = (px - t * dx, py - t * dy);
            let d = (ex * ex + ey * ey).sqrt();
            let cover = (radius + 0.5 - d).clamp(0.0, 1.0) * opacity;
            if cover > 0.0 {
                let i = (y * frame.width + x) * 3;
                for ch in 0..3 {
                    let v = frame.rgb[i + ch] as f32;
                    frame.rgb[i + ch] = (v + (colour[ch] as f32 - v) * cover).round() as u8;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::Keypoint;
    use crate::skeleton::COCO17;

    #[test]
    fn draws_limbs_where_people_are_and_nothing_elsewhere() {
        let mut f = Frame::new(100, 80, vec![0; 100 * 80 * 3]).unwrap();
        let mut kps = vec![Keypoint { x: 0.0, y: 0.0, score: 0.0 }; 17];
        kps[5] = Keypoint { x: 20.0, y: 20.0, score: 0.9 }; // left shoulder
        kps[7] = Keypoint { x: 20.0, y: 60.0, score: 0.9 }; // left elbow
        let p = Person { keypoints: kps, bbox: [10.0, 10.0, 30.0, 70.0], score: 0.9, track_id: None };
        draw(&mut f, &Overlay { people: &[p], schema: Some(COCO17), mask: None, classes: None }, &Style::default());
        let px = |x: usize, y: usize| &f.rgb[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3];
        assert_eq!(px(20, 40), &PERSON_COLOURS[0][..]);
        assert_eq!(px(80, 40), &[0, 0, 0][..]);
    }

    #[test]
    fn a_tracked_person_is_coloured_by_id_and_labelled() {
        let mut f = Frame::new(100, 80, vec![0; 100 * 80 * 3]).unwrap();
        let kps = vec![Keypoint { x: 50.0, y: 50.0, score: 0.9 }; 17];
        let p = Person { keypoints: kps, bbox: [40.0, 40.0, 60.0, 70.0], score: 0.9, track_id: Some(3) };
        assert_eq!(person_colour(&p, 0), PERSON_COLOURS[2]);
        draw(&mut f, &Overlay { people: &[p], schema: Some(COCO17), mask: None, classes: None }, &Style::default());
        let px = |x: usize, y: usize| f.rgb[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3].to_vec();
        assert_eq!(px(50, 50), PERSON_COLOURS[2].to_vec());
        // The tag sits above the box's corner: its colour with dark digit pixels.
        let tag: Vec<Vec<u8>> = (26..40).flat_map(|y| (40..52).map(move |x| (x, y))).map(|(x, y)| px(x, y)).collect();
        assert!(tag.iter().any(|c| c == &PERSON_COLOURS[2].to_vec()));
        assert!(tag.iter().any(|c| c == &vec![20, 20, 20]));
    }

    #[test]
    fn mask_tints_only_the_person() {
        let mut f = Frame::new(4, 2, vec![100; 4 * 2 * 3]).unwrap();
        let mask = Mask { width: 2, height: 1, probs: vec![1.0, 0.0], region: crate::preprocess::FrameOnGrid::full(2, 1) };
        draw(&mut f, &Overlay { people: &[], schema: None, mask: Some(&mask), classes: None }, &Style::default());
        assert_ne!(&f.rgb[0..3], &[100, 100, 100]);
        assert_eq!(&f.rgb[9..12], &[100, 100, 100]);
    }
}
