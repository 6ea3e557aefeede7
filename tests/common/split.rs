//! Framing must survive any TCP segmentation: the one helper that cuts a
//! stream at every pair of points.

/// Calls `check(i, j, [head, middle, tail])` for every `i <= j` in `bytes`,
/// the stream cut into three pieces at `i` and `j`.
pub fn for_every_pair_of_split_points(
    bytes: &[u8],
    mut check: impl FnMut(usize, usize, [&[u8]; 3]),
) {
    for i in 0..=bytes.len() {
        for j in i..=bytes.len() {
            check(i, j, [&bytes[..i], &bytes[i..j], &bytes[j..]]);
        }
    }
}
