//! Why a miner's connection ended: shared vocabulary between the loop that
//! ends a connection, the listener that bans for it, and the metrics that
//! count it (`ndas_disconnects_total{reason=…}`), so none of them has to
//! import another to name a reason.

/// Why a connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// The miner hung up (closed, or reset the connection).
    Eof,
    /// The miner sent a line over `max_line_bytes`.
    LineTooLong,
    /// Too many bad lines, bytes that are not the protocol, or a read
    /// error other than the miner hanging up.
    Protocol,
    /// The miner did not read what it was sent.
    WriteStalled,
    /// Not subscribed and authorized within `handshake_timeout`.
    HandshakeTimeout,
    /// Nothing received for `idle_timeout`.
    Idle,
    /// More lines than `max_lines_per_second` allows.
    Flood,
    /// `max_invalid_shares` in a row; told to reconnect.
    InvalidShares,
    Shutdown,
    /// A TLS port's handshake failed: a plain-text miner, or a client that
    /// refused the certificate.
    Tls,
    /// A Stratum V2 connection's Noise handshake failed, or a frame did
    /// not decrypt: a plain-text client, or one pinning another key.
    Noise,
    /// No node served for `mining.failover_after_seconds`: closed so the
    /// miner's firmware fails over to its backup pool.
    NoNode,
}

impl Closed {
    crate::labels! {
        /// Every label of `ndas_disconnects_total{reason=…}`.
        REASONS;
        /// This reason's label.
        fn label;
        Closed::Eof => "eof",
        Closed::LineTooLong => "line_too_long",
        Closed::Protocol => "protocol",
        Closed::WriteStalled => "write_stalled",
        Closed::HandshakeTimeout => "handshake_timeout",
        Closed::Idle => "idle",
        Closed::Flood => "flood",
        Closed::InvalidShares => "invalid_shares",
        Closed::Shutdown => "shutdown",
        Closed::Tls => "tls",
        Closed::Noise => "noise",
        Closed::NoNode => "no_node",
    }

    /// Why a connection whose read failed with `error` ended: a miner that
    /// resets the connection (a power cycle, a firmware closing with our
    /// job unread) hung up; anything else is the protocol's.
    pub fn from_read_error(error: &std::io::Error) -> Closed {
        use std::io::ErrorKind::*;
        match error.kind() {
            ConnectionReset | ConnectionAborted | UnexpectedEof => Closed::Eof,
            _ => Closed::Protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Closed;

    #[test]
    fn a_reset_is_a_hang_up_and_bytes_that_are_not_text_are_the_protocol_s() {
        use std::io::{Error, ErrorKind};
        let reset = Error::from(ErrorKind::ConnectionReset);
        assert_eq!(Closed::from_read_error(&reset), Closed::Eof);
        let not_utf8 = Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8");
        assert_eq!(Closed::from_read_error(&not_utf8), Closed::Protocol);
    }

    /// Prometheus label values that dashboards and alerts name: neither
    /// their spelling nor their order may drift.
    #[test]
    fn the_close_labels_are_the_published_ones_in_their_order() {
        assert_eq!(
            Closed::REASONS,
            [
                "eof",
                "line_too_long",
                "protocol",
                "write_stalled",
                "handshake_timeout",
                "idle",
                "flood",
                "invalid_shares",
                "shutdown",
                "tls",
                "noise",
                "no_node",
            ]
        );
        assert_eq!(Closed::InvalidShares.label(), "invalid_shares");
    }
}
