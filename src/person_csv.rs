//! `--csv FILE`: one row per person per frame, for pandas and spreadsheets: frame, timestamp,
//! track id (empty when not tracked), score, box, then x, y and score of every joint, under a
//! header that names the joints. Values are rounded as in frames.jsonl.

use crate::detections::Person;
use crate::output_files::LineFile;
use crate::records::{round_timestamp, PersonRecord};
use anyhow::Result;
use std::path::Path;

pub struct PersonCsv {
    /// Each frame's rows reach the disk whole, together.
    out: LineFile,
    joints: usize,
}

/// The header: fixed columns, then `<joint>_x,<joint>_y,<joint>_score` per joint.
pub fn header(joints: &[&str]) -> String {
    let mut cols: Vec<String> = ["frame", "timestamp_s", "track_id", "score", "box_x0", "box_y0", "box_x1", "box_y1"].map(String::from).to_vec();
    for j in joints {
        cols.extend([format!("{j}_x"), format!("{j}_y"), format!("{j}_score")]);
    }
    cols.join(",")
}

impl PersonCsv {
    /// Creates `path` and writes the header for the joints of `joints`.
    pub fn create(path: &Path, joints: &[&str]) -> Result<PersonCsv> {
        let mut out = LineFile::create(path)?;
        out.line(header(joints).as_bytes());
        out.commit()?;
        Ok(PersonCsv { out, joints: joints.len() })
    }

    /// The rows of one frame.
    pub fn write_frame(&mut self, index: u64, timestamp_s: f64, people: &[Person]) -> Result<()> {
        let mut line = String::new();
        for p in people {
            use std::fmt::Write as _;
            line.clear();
            // The values of frames.jsonl, rounded the same way.
            let rec = PersonRecord::from_person(p);
            let id = rec.track_id.map(|i| i.to_string()).unwrap_or_default();
            let [x0, y0, x1, y1] = rec.bbox;
            let _ = write!(line, "{index},{},{id},{},{x0},{y0},{x1},{y1}", round_timestamp(timestamp_s), rec.score);
            // A model with another schema than the header's would misalign columns: pad or cut.
            for j in 0..self.joints {
                match rec.keypoints.get(j) {
                    Some([x, y, score]) => {
                        let _ = write!(line, ",{x},{y},{score}");
                    }
                    None => line.push_str(",,,"),
                }
            }
            self.out.line(line.as_bytes());
        }
        self.out.commit()
    }

    pub fn finish(mut self) -> Result<()> {
        self.out.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detections::Keypoint;

    #[test]
    fn rows_follow_the_header() {
        let dir = std::env::temp_dir().join(format!("edgesight-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("people.csv");
        let mut csv = PersonCsv::create(&path, &["nose", "left_eye"]).unwrap();
        let p = Person {
            keypoints: vec![Keypoint { x: 1.234, y: 2.0, score: 0.91234 }, Keypoint { x: 3.0, y: 4.0, score: 0.5 }],
            bbox: [0.0, 1.0, 10.0, 20.0],
            score: 0.8,
            track_id: Some(4),
        };
        csv.write_frame(2, 0.2, &[p.clone(), Person { track_id: None, ..p }]).unwrap();
        csv.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "frame,timestamp_s,track_id,score,box_x0,box_y0,box_x1,box_y1,nose_x,nose_y,nose_score,left_eye_x,left_eye_y,left_eye_score");
        assert_eq!(lines[1], "2,0.2,4,0.8,0,1,10,20,1.23,2,0.9123,3,4,0.5");
        assert_eq!(lines[2], "2,0.2,,0.8,0,1,10,20,1.23,2,0.9123,3,4,0.5");
        assert_eq!(lines.len(), 3);
        let _ = std::fs::remove_dir_all(dir);
    }
}
