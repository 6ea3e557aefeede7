//! Framing must survive any TCP segmentation: the helpers that cut a
//! stream at every pair of points, or at points a property test chose.

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

/// `bytes` cut at the points `cuts` pick (proptest indices, in any order,
/// repeats allowed: empty pieces are segmentations too).
pub fn cut_at<'a>(bytes: &'a [u8], cuts: &[proptest::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks
}
