//! The checksum stored with every row of a state: CRC-32 (as zlib and
//! Python's `zlib.crc32` compute it) of the row's text fields joined by a
//! NUL byte. A row whose fields no longer match it was changed by something
//! other than the projector (a damaged disk, a stray write), and the state
//! is refused rather than served.
//!
//! ```text
//! documents:        crc32(model \0 key \0 doc)
//! processed_events: crc32(id \0 type)
//! models:           crc32(name \0 definition)
//! projector_meta:   crc32(name \0 value)
//! ```

/// The checksum of a row with these fields, as stored (an SQL integer).
pub fn row(fields: &[&str]) -> i64 {
    let mut crc = crc32fast::Hasher::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            crc.update(b"\0");
        }
        crc.update(field.as_bytes());
    }
    i64::from(crc.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_zlibs_crc32_of_the_fields_joined_by_nul() {
        // python3 -c 'import zlib; print(zlib.crc32(b"user_listing\0u1\0{}"))'
        assert_eq!(super::row(&["user_listing", "u1", "{}"]), 3_091_227_940);
        assert_ne!(super::row(&["ab", "c"]), super::row(&["a", "bc"]));
    }
}
