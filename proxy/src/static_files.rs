//! Static files: the web console and the built npm package.
//!
//! Only GET/HEAD, only regular files under the configured directories (canonicalised, so
//! neither `..` nor a symlink can leave them), no dotfiles (neither in the request path nor in
//! the path a symlink resolves to below the root), no directory listings, a size cap,
//! correct MIME types (`application/wasm` for streaming compilation) and restrictive headers.

use std::path::{Path, PathBuf};

use crate::config::{ConfigError, StaticConfig};

/// Content-Security-Policy of every static response: same-origin scripts plus WebAssembly
/// compilation, same-origin connections (the relay WebSocket), nothing framed or embedded.
pub const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
connect-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Security headers added to every response.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("x-frame-options", "DENY"),
];

/// MIME type by extension.
pub fn mime_for(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "ts" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" | "md" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// The static mounts, longest prefix first.
#[derive(Debug, Clone, Default)]
pub struct StaticFiles {
    mounts: Vec<(String, PathBuf)>,
    max_file_bytes: u64,
}

/// The outcome of a static lookup.
#[derive(Debug)]
pub enum StaticResult {
    /// Found: MIME type, the open file and its length (streamed, never read whole).
    File(&'static str, tokio::fs::File, u64),
    /// Nothing (or nothing allowed) there.
    NotFound,
    /// Path rejected as malformed or escaping.
    BadPath,
    /// Larger than the cap.
    TooLarge,
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = *b.get(i)?;
        if c == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Some(out)
}

/// Whether `canon` (canonical) lies inside `root` (canonical) with no component below the
/// root starting with '.': a symlink must not expose a dotfile or dot directory the request
/// path itself could not name.
fn inside_and_visible(canon: &Path, root: &Path) -> bool {
    match canon.strip_prefix(root) {
        Ok(rel) => !rel
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().first() == Some(&b'.')),
        Err(_) => false,
    }
}

impl StaticFiles {
    /// From `[static]`. Every configured directory must exist and be a directory (at start-up
    /// and on reload alike): a missing one is a configuration error naming its key.
    pub fn new(config: &StaticConfig) -> Result<StaticFiles, ConfigError> {
        let mut mounts = Vec::new();
        if let Some(root) = &config.root {
            mounts.push(("static.root".to_string(), "/".to_string(), root.clone()));
        }
        for (i, m) in config.mount.iter().enumerate() {
            mounts.push((
                format!("static.mount[{i}].dir"),
                m.prefix.clone(),
                m.dir.clone(),
            ));
        }
        let mut canon = Vec::with_capacity(mounts.len());
        for (key, prefix, dir) in mounts {
            let d = std::fs::canonicalize(&dir).map_err(|e| {
                ConfigError::invalid(
                    key.as_str(),
                    format!(
                        "cannot open {}: {}",
                        dir.display(),
                        e.to_string().to_lowercase()
                    ),
                )
            })?;
            if !d.is_dir() {
                return Err(ConfigError::invalid(
                    key,
                    format!("{} is not a directory", dir.display()),
                ));
            }
            canon.push((prefix, d));
        }
        canon.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Ok(StaticFiles {
            mounts: canon,
            max_file_bytes: if config.max_file_bytes == 0 {
                32 << 20
            } else {
                config.max_file_bytes
            },
        })
    }

    /// Look up a request path (without query string).
    pub async fn lookup(&self, path: &str) -> StaticResult {
        let Some((prefix, root)) = self
            .mounts
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()) || path == p.trim_end_matches('/'))
        else {
            return StaticResult::NotFound;
        };
        let rest = path.get(prefix.len()..).unwrap_or("");
        let Some(decoded) = percent_decode(rest) else {
            return StaticResult::BadPath;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return StaticResult::BadPath;
        };
        let mut rel = PathBuf::new();
        for seg in decoded.split('/') {
            if seg.is_empty() {
                continue;
            }
            if seg.starts_with('.') || seg.contains(['\\', '\0', ':']) {
                return StaticResult::BadPath;
            }
            rel.push(seg);
        }
        let mut full = root.join(&rel);
        let Ok(mut canon) = tokio::fs::canonicalize(&full).await else {
            return StaticResult::NotFound;
        };
        if !inside_and_visible(&canon, root) {
            return StaticResult::BadPath;
        }
        let Ok(mut meta) = tokio::fs::metadata(&canon).await else {
            return StaticResult::NotFound;
        };
        if meta.is_dir() {
            full = canon.join("index.html");
            let Ok(c) = tokio::fs::canonicalize(&full).await else {
                return StaticResult::NotFound;
            };
            if !inside_and_visible(&c, root) {
                return StaticResult::BadPath;
            }
            canon = c;
            let Ok(m) = tokio::fs::metadata(&canon).await else {
                return StaticResult::NotFound;
            };
            meta = m;
        }
        if !meta.is_file() {
            return StaticResult::NotFound;
        }
        if meta.len() > self.max_file_bytes {
            return StaticResult::TooLarge;
        }
        let Ok(file) = tokio::fs::File::open(&canon).await else {
            return StaticResult::NotFound;
        };
        // The length of what was opened (the file may have changed since the check above).
        let len = match file.metadata().await {
            Ok(m) if m.is_file() => m.len(),
            _ => return StaticResult::NotFound,
        };
        if len > self.max_file_bytes {
            return StaticResult::TooLarge;
        }
        StaticResult::File(mime_for(&canon), file, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MountConfig;
    use tokio::io::AsyncReadExt;

    async fn found(r: StaticResult) -> Option<(&'static str, Vec<u8>)> {
        match r {
            StaticResult::File(mime, mut f, len) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v).await.unwrap();
                assert_eq!(v.len() as u64, len);
                Some((mime, v))
            }
            _ => None,
        }
    }

    #[tokio::test]
    async fn serves_files_and_refuses_escapes() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("web");
        let pkg = outer.path().join("pkg");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::write(root.join(".secret"), "x").unwrap();
        std::fs::write(outer.path().join("outside.txt"), "nope").unwrap();
        std::fs::write(pkg.join("client_bg.wasm"), b"\0asm").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outer.path().join("outside.txt"), root.join("link.txt"))
            .unwrap();
        let s = StaticFiles::new(&StaticConfig {
            root: Some(root.clone()),
            mount: vec![MountConfig {
                prefix: "/pkg/".into(),
                dir: pkg.clone(),
            }],
            max_file_bytes: 100,
        })
        .unwrap();
        assert_eq!(
            found(s.lookup("/").await).await,
            Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
        );
        assert_eq!(
            found(s.lookup("/index.html").await).await,
            Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
        );
        assert_eq!(
            found(s.lookup("/pkg/client_bg.wasm").await).await,
            Some(("application/wasm", b"\0asm".to_vec()))
        );
        assert!(matches!(s.lookup("/sub").await, StaticResult::NotFound));
        for bad in [
            "/../outside.txt",
            "/%2e%2e/outside.txt",
            "/.secret",
            "/%2E%2E%2Foutside.txt",
            "/a\\..\\b",
            "/%zz",
            "/pkg/..%2f..%2foutside.txt",
        ] {
            assert!(
                matches!(s.lookup(bad).await, StaticResult::BadPath),
                "{bad}"
            );
        }
        #[cfg(unix)]
        assert!(matches!(s.lookup("/link.txt").await, StaticResult::BadPath));
        // A symlink whose target below the root is a dotfile or inside a dot directory is
        // refused like the dotfile itself; one to a visible file is served.
        #[cfg(unix)]
        {
            std::fs::create_dir_all(root.join(".git")).unwrap();
            std::fs::write(root.join(".git").join("config"), "x").unwrap();
            std::fs::write(root.join(".git").join("index.html"), "x").unwrap();
            std::os::unix::fs::symlink(root.join(".secret"), root.join("link_dot")).unwrap();
            std::os::unix::fs::symlink(".git/config", root.join("link_in_dot")).unwrap();
            std::os::unix::fs::symlink(".git", root.join("dot_dir")).unwrap();
            std::os::unix::fs::symlink("index.html", root.join("link_ok.html")).unwrap();
            for bad in ["/link_dot", "/link_in_dot", "/dot_dir", "/dot_dir/config"] {
                assert!(
                    matches!(s.lookup(bad).await, StaticResult::BadPath),
                    "{bad}"
                );
            }
            assert_eq!(
                found(s.lookup("/link_ok.html").await).await,
                Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
            );
        }
        std::fs::write(root.join("big.js"), vec![b'x'; 101]).unwrap();
        assert!(matches!(s.lookup("/big.js").await, StaticResult::TooLarge));
        assert!(matches!(
            s.lookup("/missing.js").await,
            StaticResult::NotFound
        ));
    }

    #[test]
    fn missing_or_non_directory_mounts_are_config_errors() {
        let outer = tempfile::tempdir().unwrap();
        let file = outer.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let cases = [
            (
                StaticConfig {
                    root: Some(outer.path().join("missing")),
                    ..StaticConfig::default()
                },
                "static.root",
            ),
            (
                StaticConfig {
                    root: Some(file.clone()),
                    ..StaticConfig::default()
                },
                "static.root",
            ),
            (
                StaticConfig {
                    root: Some(outer.path().to_path_buf()),
                    mount: vec![MountConfig {
                        prefix: "/pkg/".into(),
                        dir: outer.path().join("nope"),
                    }],
                    max_file_bytes: 0,
                },
                "static.mount[0].dir",
            ),
        ];
        for (c, key) in cases {
            match StaticFiles::new(&c) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_for(Path::new("a.wasm")), "application/wasm");
        assert_eq!(
            mime_for(Path::new("a.MJS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(mime_for(Path::new("noext")), "application/octet-stream");
    }
}
