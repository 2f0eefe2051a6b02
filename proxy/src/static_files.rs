//! Static files: the web console and the built npm package.
//!
//! Only GET/HEAD, only regular files under the configured directories (canonicalised, so
//! neither `..` nor a symlink can leave them), no dotfiles (neither in the request path nor in
//! the path a symlink resolves to below the root), no directory listings, a size cap,
//! correct MIME types (`application/wasm` for streaming compilation) and restrictive headers.
//!
//! **Pre-compressed variants.** Beside `file`, `file.br` and `file.gz` (written at build time
//! by `cargo xtask build-wasm` for the package's `.wasm` and `.js`) are served instead when the
//! request's `Accept-Encoding` allows them (brotli first) and they are not older than `file`,
//! with `Content-Encoding` and `Vary: Accept-Encoding`. The proxy compresses nothing itself:
//! no CPU per request or at start-up, and the best levels are affordable at build time.
//!
//! **Validators.** Every file gets a strong `ETag` from the served representation's length and
//! modification time (and its encoding), so a browser revalidates with `If-None-Match` and gets
//! `304 Not Modified` without the body (`Cache-Control: no-cache`: the package's file names are
//! not versioned, so a cached copy must be revalidated before use).

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

/// A file found for a request: what to send and how to describe it.
#[derive(Debug)]
pub struct StaticFile {
    /// MIME type of the file (not of its encoding).
    pub mime: &'static str,
    /// The open file (the original or its pre-compressed variant), streamed, never read
    /// whole.
    pub file: tokio::fs::File,
    /// Its length.
    pub len: u64,
    /// `br` or `gzip` for a pre-compressed variant.
    pub encoding: Option<&'static str>,
    /// Pre-compressed variants exist: the response depends on `Accept-Encoding`.
    pub varies: bool,
    /// The strong validator of this representation, quoted.
    pub etag: String,
}

impl StaticFile {
    /// Whether an `If-None-Match` header value names this representation (`*` or one of a
    /// list of entity tags; a weak tag matches its strong twin, as RFC 9110 requires for this
    /// header).
    pub fn matches(&self, if_none_match: &str) -> bool {
        if_none_match
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag)
    }
}

/// The encodings of the pre-compressed variants, in order of preference: the request's
/// `Accept-Encoding` must allow the encoding (`q` > 0).
const VARIANTS: [(&str, &str); 2] = [("br", "br"), ("gzip", "gz")];

/// Whether `accept_encoding` (the header's value) accepts `coding` with a non-zero quality.
pub fn accepts(accept_encoding: &str, coding: &str) -> bool {
    let mut star = None;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = parts
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .and_then(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(coding) {
            return q > 0.0;
        }
        if name == "*" {
            star = Some(q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// `"<len hex>-<mtime ns hex>[-<encoding>]"`: changes when the file is replaced or changed.
fn etag(meta: &std::fs::Metadata, encoding: Option<&str>) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    match encoding {
        Some(e) => format!("\"{:x}-{mtime:x}-{e}\"", meta.len()),
        None => format!("\"{:x}-{mtime:x}\"", meta.len()),
    }
}

/// The outcome of a static lookup.
#[derive(Debug)]
pub enum StaticResult {
    /// Found.
    File(StaticFile),
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

    /// Look up a request path (without query string), choosing a pre-compressed variant
    /// that `accept_encoding` (the request's header, if any) allows.
    pub async fn lookup(&self, path: &str, accept_encoding: Option<&str>) -> StaticResult {
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
        let mime = mime_for(&canon);
        // A pre-compressed variant beside the file, when the browser takes it: the same
        // checks as the file itself, and not older than it (a stale variant is ignored).
        let mut varies = false;
        for (coding, suffix) in VARIANTS {
            let mut name = canon.clone().into_os_string();
            name.push(".");
            name.push(suffix);
            let variant = PathBuf::from(name);
            let Ok(vmeta) = tokio::fs::symlink_metadata(&variant).await else {
                continue;
            };
            let fresh = match (vmeta.modified(), meta.modified()) {
                (Ok(v), Ok(f)) => v >= f,
                _ => false,
            };
            if !vmeta.is_file() || !fresh || vmeta.len() > self.max_file_bytes {
                continue;
            }
            varies = true;
            if !accept_encoding.is_some_and(|a| accepts(a, coding)) {
                continue;
            }
            if let Some(found) = open_checked(&variant, self.max_file_bytes).await {
                let (file, vmeta) = found;
                return StaticResult::File(StaticFile {
                    mime,
                    len: vmeta.len(),
                    file,
                    encoding: Some(coding),
                    varies,
                    etag: etag(&vmeta, Some(coding)),
                });
            }
        }
        match open_checked(&canon, self.max_file_bytes).await {
            Some((file, meta)) => StaticResult::File(StaticFile {
                mime,
                len: meta.len(),
                file,
                encoding: None,
                varies,
                etag: etag(&meta, None),
            }),
            None if meta.len() > self.max_file_bytes => StaticResult::TooLarge,
            None => StaticResult::NotFound,
        }
    }
}

/// Opens a regular file and reads its metadata from the open handle (the file may have
/// changed since it was looked at): `None` unless it is a regular file within the size cap.
async fn open_checked(path: &Path, max: u64) -> Option<(tokio::fs::File, std::fs::Metadata)> {
    let file = tokio::fs::File::open(path).await.ok()?;
    let meta = file.metadata().await.ok()?;
    (meta.is_file() && meta.len() <= max).then_some((file, meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MountConfig;
    use tokio::io::AsyncReadExt;

    async fn found(r: StaticResult) -> Option<(&'static str, Vec<u8>)> {
        match r {
            StaticResult::File(mut f) => {
                let mut v = Vec::new();
                f.file.read_to_end(&mut v).await.unwrap();
                assert_eq!(v.len() as u64, f.len);
                Some((f.mime, v))
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
            found(s.lookup("/", None).await).await,
            Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
        );
        assert_eq!(
            found(s.lookup("/index.html", None).await).await,
            Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
        );
        assert_eq!(
            found(s.lookup("/pkg/client_bg.wasm", None).await).await,
            Some(("application/wasm", b"\0asm".to_vec()))
        );
        assert!(matches!(
            s.lookup("/sub", None).await,
            StaticResult::NotFound
        ));
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
                matches!(s.lookup(bad, None).await, StaticResult::BadPath),
                "{bad}"
            );
        }
        #[cfg(unix)]
        assert!(matches!(
            s.lookup("/link.txt", None).await,
            StaticResult::BadPath
        ));
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
                    matches!(s.lookup(bad, None).await, StaticResult::BadPath),
                    "{bad}"
                );
            }
            assert_eq!(
                found(s.lookup("/link_ok.html", None).await).await,
                Some(("text/html; charset=utf-8", b"<h1>hi</h1>".to_vec()))
            );
        }
        std::fs::write(root.join("big.js"), vec![b'x'; 101]).unwrap();
        assert!(matches!(
            s.lookup("/big.js", None).await,
            StaticResult::TooLarge
        ));
        assert!(matches!(
            s.lookup("/missing.js", None).await,
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
    fn accept_encoding_qualities() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("GZIP;q=0.5", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("br;q=0.000", "br"));
        assert!(accepts("*", "br"));
        assert!(!accepts("*;q=0", "gzip"));
        assert!(!accepts("br;q=0, *", "br"));
        assert!(!accepts("identity", "gzip"));
        assert!(!accepts("", "br"));
    }

    #[test]
    fn if_none_match_names_the_representation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let f = StaticFile {
            mime: "text/plain",
            file: tokio::fs::File::from_std(std::fs::File::open(&path).unwrap()),
            len: 1,
            encoding: None,
            varies: false,
            etag: "\"1-2\"".into(),
        };
        assert!(f.matches("\"1-2\""));
        assert!(f.matches("W/\"1-2\""));
        assert!(f.matches("\"a\", \"1-2\""));
        assert!(f.matches("*"));
        assert!(!f.matches("\"1-3\""));
        assert!(!f.matches("\"1-2-br\""));
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
