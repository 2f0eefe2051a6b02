//! `cargo xtask screenshots`: the console's screenshots in `docs/screenshots/`, taken from the
//! real demo (the same prl-sim and prl-proxy as `cargo xtask demo`, through [`demo::Demo`]) by
//! headless Chromium, driven by `tests/e2e/screenshots.mjs` (playwright-core). Regenerate them
//! whenever the console changes; the README shows them.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::{demo, exec, wasm};

/// Where the screenshots go, relative to the workspace root.
pub const OUT_DIR: &str = "docs/screenshots";
/// What the script must write.
pub const SHOTS: &[&str] = &["login.png", "vms.png", "error.png", "narrow.png"];

/// `cargo xtask screenshots [--no-build]`.
pub fn run(root: &Path, build_first: bool) -> Result<()> {
    let pkg = if build_first {
        demo::build(root)?
    } else {
        root.join(wasm::OUT_DIR)
    };
    let out = root.join(OUT_DIR);
    fs::create_dir_all(&out)?;
    for shot in SHOTS {
        // A stale file must not pass for a new one.
        let _ = fs::remove_file(out.join(shot));
    }
    let demo = demo::Demo::start(root, &pkg)?;
    println!("xtask: screenshots of {}", demo.url);
    let result = exec(
        Command::new("node")
            .current_dir(root.join("tests/e2e"))
            .arg("screenshots.mjs")
            .arg(&demo.url)
            .arg(&out),
    );
    drop(demo);
    result?;
    for shot in SHOTS {
        let path = out.join(shot);
        match fs::metadata(&path) {
            Ok(m) => println!("  {OUT_DIR}/{shot}: {} KB", m.len().div_ceil(1024)),
            Err(_) => bail!("the script did not write {}", path.display()),
        }
    }
    Ok(())
}
