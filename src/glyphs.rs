//! A 3x5 pixel font for the digits the renderer writes next to people (track ids): no font
//! files, the same pixels in every output.

/// Rows of each digit, top to bottom; bit 2 is the left column.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

pub const GLYPH_W: usize = 3;
pub const GLYPH_H: usize = 5;
/// Columns between glyphs.
pub const GAP: usize = 1;

/// Width in font pixels of `n` written in decimal.
pub fn width(n: u64) -> usize {
    let digits = n.to_string().len();
    digits * GLYPH_W + (digits - 1) * GAP
}

/// Whether font pixel (x, y) of `n` in decimal is set; (0, 0) is the top-left.
pub fn lit(n: u64, x: usize, y: usize) -> bool {
    if y >= GLYPH_H {
        return false;
    }
    let text = n.to_string();
    let (i, col) = (x / (GLYPH_W + GAP), x % (GLYPH_W + GAP));
    match text.as_bytes().get(i) {
        Some(&c) if col < GLYPH_W => DIGITS[(c - b'0') as usize][y] & (0b100 >> col) != 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_have_their_shapes() {
        assert_eq!(width(7), 3);
        assert_eq!(width(12), 7);
        // "1" has a lit centre column all the way down; "0" a hollow middle.
        assert!((0..5).all(|y| lit(1, 1, y)));
        assert!(!lit(0, 1, 2) && lit(0, 0, 2));
        // The gap column between digits is never lit, nor anything past the end.
        assert!((0..5).all(|y| !lit(88, 3, y) && !lit(88, 7, y)));
        assert!(!lit(5, 0, 5));
    }
}
