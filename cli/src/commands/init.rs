//! `rivet init lua`.

use std::path::Path;

pub fn run(_dir: &Path, _force: bool) -> anyhow::Result<u8> {
    anyhow::bail!("rivet init lua is not available yet")
}
