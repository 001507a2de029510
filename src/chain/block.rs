//! Serializing a found block for `submitblock`.

use super::encode::write_compact_size;

/// Builds the block: header, transaction count, coinbase, then the template's
/// transactions as the node gave them (already in block serialization).
///
/// `write_coinbase` appends the coinbase in its block form.
pub fn assemble(
    header: &[u8; 80],
    template_tx_count: usize,
    template_tx_data: &[u8],
    write_coinbase: impl FnOnce(&mut Vec<u8>),
) -> Vec<u8> {
    let mut block = Vec::with_capacity(80 + 9 + 256 + template_tx_data.len());
    block.extend_from_slice(header);
    write_compact_size(&mut block, template_tx_count as u64 + 1);
    write_coinbase(&mut block);
    block.extend_from_slice(template_tx_data);
    block
}
