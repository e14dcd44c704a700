//! The checksum stored with every row of a state: CRC-32 (as zlib and
//! Python's `zlib.crc32` compute it) of the row's text fields joined by a
//! NUL byte. A row whose fields no longer match it was changed by something
//! other than the projector (a damaged disk, a stray write), and the state
//! is refused rather than served.
//!
//! ```text
//! documents:        crc32(model \0 key \0 doc)
//! processed_events: crc32(id \0 type name)
//! event_types:      crc32(code in decimal \0 name)
//! models:           crc32(name \0 definition)
//! projector_meta:   crc32(name \0 value)
//! ```

/// The checksum of a row with these fields, as stored (an SQL integer).
pub fn row(fields: &[&str]) -> i64 {
    // A short row (an event id and type, most keys) is joined on the stack
    // and hashed in one call: a call per field costs more than its bytes.
    let mut joined = [0u8; 128];
    let len = fields
        .iter()
        .map(|f| f.len() + 1)
        .sum::<usize>()
        .saturating_sub(1);
    if len <= joined.len() {
        let mut at = 0;
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                at += 1;
            }
            joined[at..at + field.len()].copy_from_slice(field.as_bytes());
            at += field.len();
        }
        return i64::from(crc32fast::hash(&joined[..len]));
    }
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
        // Rows too long to join on the stack hash the same bytes.
        let long = "x".repeat(200);
        let joined = format!("m\0{long}\0{{}}");
        assert_eq!(
            super::row(&["m", &long, "{}"]),
            i64::from(crc32fast::hash(joined.as_bytes()))
        );
    }
}
