//! W3C trace context: the `traceparent` a job's trace travels in, from the API through the
//! store and the assignment message to the runner (see the telemetry section of
//! ARCHITECTURE.md). Only the format lives here; spans are made by `rivet-telemetry`.

use std::fmt;
use std::str::FromStr;

/// A parsed `traceparent` (version `00`): `00-<32 hex trace id>-<16 hex span id>-<2 hex
/// flags>`. The ids are never all zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace's id.
    pub trace_id: [u8; 16],
    /// The parent span's id.
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// Why a `traceparent` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent `{value}`: {reason}")]
pub struct TraceParentError {
    /// What was given (cut to 64 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TraceParent {
    /// Whether the parent was sampled (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits, as trace viewers show it.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(text: &str) -> Result<Self, TraceParentError> {
        let fail = |reason| TraceParentError { value: text.chars().take(64).collect(), reason };
        let text = text.trim();
        let parts: Vec<&str> = text.split('-').collect();
        let [version, trace_id, span_id, flags] = parts[..] else {
            return Err(fail("expected four dash-separated fields (version-trace id-span id-flags)"));
        };
        if version != "00" {
            return Err(fail("only version 00 is understood"));
        }
        let mut parsed = TraceParent { trace_id: [0; 16], span_id: [0; 8], flags: 0 };
        let lower_hex = |field: &str| field.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if trace_id.len() != 32 || !lower_hex(trace_id) || hex::decode_to_slice(trace_id, &mut parsed.trace_id).is_err()
        {
            return Err(fail("the trace id must be 32 lowercase hex digits"));
        }
        if span_id.len() != 16 || !lower_hex(span_id) || hex::decode_to_slice(span_id, &mut parsed.span_id).is_err() {
            return Err(fail("the span id must be 16 lowercase hex digits"));
        }
        let mut flag = [0u8; 1];
        if flags.len() != 2 || !lower_hex(flags) || hex::decode_to_slice(flags, &mut flag).is_err() {
            return Err(fail("the flags must be 2 lowercase hex digits"));
        }
        parsed.flags = flag[0];
        if parsed.trace_id == [0; 16] {
            return Err(fail("the trace id is all zeros"));
        }
        if parsed.span_id == [0; 8] {
            return Err(fail("the span id is all zeros"));
        }
        Ok(parsed)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", hex::encode(self.trace_id), hex::encode(self.span_id), self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_w3c_example() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed: TraceParent = text.parse().expect("parses");
        assert!(parsed.sampled());
        assert_eq!(parsed.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for (text, reason) in [
            ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "version"),
            ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", "all zeros"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "all zeros"),
            ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "trace id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", "trace id"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "four"),
            ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "flags"),
        ] {
            let err = text.parse::<TraceParent>().expect_err(text);
            assert!(err.to_string().contains(reason), "{text}: {err}");
        }
    }
}
