//! The "semver-like" order of pack versions, which decides what "latest
//! active" means.
//!
//! A version is split at its first `-` into a release part and an optional
//! pre-release part; each part is split at `.` into components. Components
//! compare left to right: two numeric components (ASCII digits only)
//! compare as numbers, a numeric component sorts before a non-numeric one,
//! two non-numeric components compare byte-wise, and a missing component
//! counts as `0` in the release part (so `1` and `1.0` and `1.0.0` are
//! equal there). A version without a pre-release sorts after the same
//! release with one (`1.0-rc.1` < `1.0`), as in SemVer. Versions equal by
//! these rules (`1.0` and `1.0.0`) are ordered by their text byte-wise, so
//! the order is total and two different strings never tie.
//!
//! The original (TasksGodzilla) picked the most recently updated active row;
//! polis orders by version instead, so the answer does not depend on when a
//! row was written.

use std::cmp::Ordering;

/// Compares two pack versions by the rules in this module's documentation.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a_release, a_pre) = split(a);
    let (b_release, b_pre) = split(b);
    compare_components(a_release, b_release, true)
        .then_with(|| match (a_pre, b_pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => compare_components(x, y, false),
        })
        .then_with(|| a.cmp(b))
}

fn split(version: &str) -> (&str, Option<&str>) {
    match version.split_once('-') {
        Some((release, pre)) => (release, Some(pre)),
        None => (version, None),
    }
}

fn compare_components(a: &str, b: &str, pad_with_zero: bool) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        let ordering = match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (Some(x), Some(y)) => compare_component(x, y),
            (Some(x), None) if pad_with_zero => compare_component(x, "0"),
            (None, Some(y)) if pad_with_zero => compare_component("0", y),
            // A longer pre-release sorts after its prefix, as in SemVer.
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
}

fn compare_component(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The digits of a numeric component without leading zeros, so that
/// comparing length then text compares the numbers without overflow.
fn numeric(component: &str) -> Option<&str> {
    if component.is_empty() || !component.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = component.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0" } else { trimmed })
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn numeric_components_compare_as_numbers_not_text() {
        assert_eq!(compare("1.10", "1.9"), Greater);
        assert_eq!(compare("2.0", "10.0"), Less);
        assert_eq!(compare("1.0", "1.0"), Equal);
    }

    #[test]
    fn a_release_sorts_after_its_prereleases() {
        assert_eq!(compare("1.0-rc.1", "1.0"), Less);
        assert_eq!(compare("1.0-rc.2", "1.0-rc.10"), Less);
        assert_eq!(compare("1.0-alpha", "1.0-alpha.1"), Less);
        assert_eq!(compare("1.0-beta", "1.0-alpha"), Greater);
    }

    #[test]
    fn missing_release_components_count_as_zero_and_ties_break_by_text() {
        assert_eq!(compare("1", "1.0.1"), Less);
        // Equal as versions; the text decides so the order stays total.
        assert_eq!(compare("1.0", "1.0.0"), Less);
        assert_eq!(compare("01.0", "1.0"), Less);
    }

    #[test]
    fn numbers_longer_than_u64_do_not_overflow() {
        assert_eq!(compare("1.99999999999999999999999", "1.100000000000000000000000"), Less);
    }

    #[test]
    fn non_numeric_components_sort_after_numeric_ones() {
        assert_eq!(compare("1.x", "1.2"), Greater);
    }
}
