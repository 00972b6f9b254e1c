//! "Did you mean" suggestions for misspelt keys, purposes, groups and fields.

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), so that
/// `feilds` is one edit away from `fields`.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub(crate) fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        // On a tie, prefer the candidate of the same length (a transposition over a deletion).
        .min_by_key(|(d, c)| (*d, c.chars().count().abs_diff(word.chars().count())))
        .map(|(_, c)| c)
}

/// ` (did you mean "x"?)` or an empty string.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match closest(word, candidates) {
        Some(c) => format!(" (did you mean \"{c}\"?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpositions_count_once() {
        assert_eq!(edit_distance("feilds", "fields"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let keys = ["fields", "purposes", "dataset"];
        assert_eq!(closest("feilds", keys), Some("fields"));
        assert_eq!(closest("purpose", keys), Some("purposes"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("=>", ["=", "!=", ">="]), Some(">="));
    }
}
