//! GitHub's timestamps: RFC 3339, `Z` or an offset
//! (`2019-05-15T15:20:30Z`, `2019-05-15T11:20:30-04:00`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `text` as an instant; `None` if it is not RFC 3339 or before 1970.
pub fn parse(text: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    let secs = u64::try_from(t.timestamp()).ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_nanos(t.timestamp_subsec_nanos().into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zulu_and_offsets() {
        let z = parse("2019-05-15T15:20:30Z").unwrap();
        assert_eq!(z, UNIX_EPOCH + Duration::from_secs(1_557_933_630));
        assert_eq!(parse("2019-05-15T11:20:30-04:00"), Some(z));
        assert_eq!(parse("yesterday"), None);
    }
}
