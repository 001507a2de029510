//! A share that is also a block, as the journal and the node take it.

use std::sync::Arc;
use std::time::Instant;

use crate::chain::{block, Hash256};
use crate::stratum::method::Extranonce2;
use crate::work::{Extranonce1, Job};

/// A share that is also a block: all that is needed to serialize it.
#[derive(Debug, Clone)]
pub struct FoundBlock {
    pub job: Arc<Job>,
    pub header: [u8; 80],
    pub hash: Hash256,
    pub extranonce1: Extranonce1,
    pub extranonce2: Extranonce2,
    pub worker: Arc<str>,
    /// When the share's line was read, for the share-to-submit latency.
    pub received: Instant,
}

impl FoundBlock {
    /// The block as `submitblock` takes it.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.serialize_into(&mut out);
        out
    }

    /// The block up to its template's transactions (header, transaction
    /// count, coinbase), appended to `out`.
    pub fn serialize_head_into(&self, out: &mut Vec<u8>) {
        let template = &self.job.template;
        block::assemble_into(out, &self.header, template.tx_count, &[], |out| {
            self.job
                .coinbase
                .write_for_block(&self.extranonce1.0, self.extranonce2.as_bytes(), out)
        })
    }

    /// [`FoundBlock::serialize`], appending to `out`.
    pub fn serialize_into(&self, out: &mut Vec<u8>) {
        let template = &self.job.template;
        block::assemble_into(
            out,
            &self.header,
            template.tx_count,
            &template.tx_data,
            |out| {
                self.job.coinbase.write_for_block(
                    &self.extranonce1.0,
                    self.extranonce2.as_bytes(),
                    out,
                )
            },
        )
    }
}
