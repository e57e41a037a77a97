//! The version an SQE build reports: in `system.runtime.nodes`, worker heartbeats, the Flight
//! SQL server info, Trino's `nodeVersion` and `version()`.
//!
//! It is the crate version, kept in a fixed 64-byte slot behind a marker
//! (`SQE_VERSION_SLOT=<version>`, NUL-padded) and read through an opaque reference, so the
//! compiler cannot fold it into its readers. A built binary can be given another version by
//! rewriting the slot in place (`images/stamp-version.sh`), the way Go's `-ldflags -X` stamps
//! one: two images of the same source with different versions, without compiling twice.

/// The marker before the version in the slot.
pub const MARKER: &[u8] = b"SQE_VERSION_SLOT=";
const SLOT_LEN: usize = 64;

static SLOT: [u8; SLOT_LEN] = slot(env!("CARGO_PKG_VERSION"));

const fn slot(version: &str) -> [u8; SLOT_LEN] {
    let v = version.as_bytes();
    assert!(
        MARKER.len() + v.len() < SLOT_LEN,
        "the version does not fit its slot"
    );
    let mut out = [0u8; SLOT_LEN];
    let mut i = 0;
    while i < MARKER.len() {
        out[i] = MARKER[i];
        i += 1;
    }
    let mut j = 0;
    while j < v.len() {
        out[MARKER.len() + j] = v[j];
        j += 1;
    }
    out
}

/// The version in a slot's bytes: what follows the marker up to the first NUL, if it is UTF-8.
fn parse(slot: &[u8]) -> Option<&str> {
    let rest = slot.strip_prefix(MARKER)?;
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let version = std::str::from_utf8(&rest[..end]).ok()?;
    (!version.is_empty()).then_some(version)
}

/// This build's version (the crate version unless the binary was stamped).
pub fn version() -> &'static str {
    let slot: &'static [u8; SLOT_LEN] = std::hint::black_box(&SLOT);
    parse(slot).unwrap_or(env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_the_version_after_the_marker() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
        let cases: [(&[u8], Option<&str>); 5] = [
            (b"SQE_VERSION_SLOT=0.1.0\0\0\0", Some("0.1.0")),
            (b"SQE_VERSION_SLOT=0.2.0-rc.1", Some("0.2.0-rc.1")),
            (b"SQE_VERSION_SLOT=\0\0", None),
            (b"SQE_VERSION_SLOT=\xff\0", None),
            (b"SOMETHING_ELSE=0.1.0\0", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes), want, "{}", String::from_utf8_lossy(bytes));
        }
        assert_eq!(parse(&slot("9.8.7")), Some("9.8.7"));
    }
}
