//! The block journal when the disk fails: NDAS refuses to start rather than
//! believe no block is pending.

mod common;

use common::node::free_port;
use common::{endpoint_config, temp_dir};

const PAYOUT: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_read_stops_the_start() {
    let dir = temp_dir();
    let config = endpoint_config((free_port(), "u", "p"), "regtest", dir.path(), PAYOUT);
    // A real read error, as a failing disk gives it: the log is the
    // process's own memory, and reading it from offset 0 is EIO.
    let blocks = config.data_dir.join("blocks");
    std::fs::create_dir_all(blocks.join("settled")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", blocks.join("found.log")).unwrap();
    let refused = match ndas::start(config).await {
        Ok(_) => panic!("NDAS started on a journal it could not read"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("cannot read the block journal"),
        "{refused}"
    );
    assert!(refused.contains("found.log"), "{refused}");
    assert!(refused.contains("Input/output error"), "{refused}");
    // The file is left as it was.
    assert!(blocks
        .join("found.log")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}
