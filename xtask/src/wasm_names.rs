//! Short import and export names for the package's `.wasm`, and the glue rewritten to match.
//!
//! wasm-bindgen names each import after its JavaScript function with a hash
//! (`__wbg_set_onopen_757be120cc7b1ea6`) and each export after its Rust path; the names sit in
//! the `.wasm` and again in the glue, and their hex hashes do not compress (2.6 KB of the
//! gzipped `.wasm`). wasm-opt's `--minify-imports-and-exports-and-modules` renames them all
//! (`a`, `b`, ..., one import module `a`) and prints the renames as JSON; [`Renames::apply`]
//! then edits the glue where it names them: the import object's keys, its module key and the
//! `wasm.<export>` accesses. Anything else that names an import fails the build instead of
//! shipping a glue that no longer matches its `.wasm`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

/// The renames wasm-opt made.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Renames {
    /// Old import module name → new.
    pub modules: BTreeMap<String, String>,
    /// Old import name → new.
    pub imports: BTreeMap<String, String>,
    /// Old export name → new.
    pub exports: BTreeMap<String, String>,
}

/// A JavaScript identifier (the characters the rewrite treats as one name).
fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// A name that can stand unquoted as a property name and after `wasm.`.
fn is_plain_name(name: &str) -> bool {
    name.chars().next().is_some_and(|c| !c.is_ascii_digit()) && name.chars().all(is_ident)
}

/// `rename` applied to each value of `map` (renames of a later round, keyed by the name the
/// earlier round gave).
fn chain(map: &mut BTreeMap<String, String>, rename: &BTreeMap<String, String>) {
    for new in map.values_mut() {
        if let Some(next) = rename.get(new.as_str()) {
            next.clone_into(new);
        }
    }
}

impl Renames {
    /// Reads wasm-opt's report: one JSON object `{ "imports": [[module, name, new], ...],
    /// "exports": [[name, new], ...] }` per run of the pass (`--converge` runs it again on its
    /// own output), chained from the first to the last. `new_module` is the module every import
    /// now has (read from the `.wasm`).
    pub fn parse(report: &str, new_module: &str) -> Result<Renames> {
        let mut renames = Renames::default();
        let objects = serde_json::Deserializer::from_str(report).into_iter::<serde_json::Value>();
        for (round, object) in objects.enumerate() {
            let object = object.context("wasm-opt's rename report is not json")?;
            let imports: Vec<(String, String, String)> =
                serde_json::from_value(object["imports"].clone())
                    .context("wasm-opt's rename report: bad `imports`")?;
            let exports: Vec<(String, String)> = serde_json::from_value(object["exports"].clone())
                .context("wasm-opt's rename report: bad `exports`")?;
            let import_round: BTreeMap<String, String> = imports
                .iter()
                .map(|(_, old, new)| (old.clone(), new.clone()))
                .collect();
            let export_round: BTreeMap<String, String> = exports.into_iter().collect();
            if round == 0 {
                for (module, _, _) in &imports {
                    renames
                        .modules
                        .insert(module.clone(), new_module.to_owned());
                }
                renames.imports = import_round;
                renames.exports = export_round;
            } else {
                chain(&mut renames.imports, &import_round);
                chain(&mut renames.exports, &export_round);
            }
        }
        for new in renames.imports.values().chain(renames.exports.values()) {
            if !is_plain_name(new) {
                bail!("wasm-opt renamed to `{new}`, which the glue cannot spell unquoted");
            }
        }
        Ok(renames)
    }

    /// The glue with the new names: `"<module>"` string literals, `<import>:` keys and
    /// `wasm.<export>` accesses. Fails when the glue names an import anywhere else, or names no
    /// import at all.
    pub fn apply(&self, glue: &str) -> Result<String> {
        let mut text = glue.to_owned();
        for (old, new) in &self.modules {
            let quoted = format!("\"{old}\"");
            if !text.contains(&quoted) {
                bail!("the glue has no import module {quoted}");
            }
            text = text.replace(&quoted, &format!("\"{new}\""));
        }
        let mut out = String::with_capacity(text.len());
        let mut renamed_imports = 0;
        let mut rest = text.as_str();
        while let Some(start) = rest.find(is_ident) {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let len = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
            let (word, after) = tail.split_at(len);
            let member_of_wasm =
                out.ends_with("wasm.") && !out[..out.len() - "wasm.".len()].ends_with(is_ident);
            let new = if member_of_wasm {
                self.exports.get(word)
            } else if let Some(new) = self.imports.get(word) {
                if !after.trim_start().starts_with(':') {
                    bail!("the glue names import `{word}` outside its import object");
                }
                renamed_imports += 1;
                Some(new)
            } else {
                None
            };
            out.push_str(new.map_or(word, String::as_str));
            rest = after;
        }
        out.push_str(rest);
        if renamed_imports != self.imports.len() {
            bail!(
                "the glue defines {renamed_imports} of the {} imports",
                self.imports.len()
            );
        }
        Ok(out)
    }
}

/// `wasm` with the exports named in `keep` given back their old names (the package's
/// `InitOutput` promises `memory`), and `renames` updated to match. Fails when the binary has
/// no export section or a kept name would clash with another export.
pub fn keep_exports(wasm: &[u8], renames: &mut Renames, keep: &[&str]) -> Result<Vec<u8>> {
    let mut back = BTreeMap::new();
    for old in keep {
        if let Some(new) = renames.exports.remove(*old) {
            back.insert(new, (*old).to_owned());
        }
    }
    let mut r = Reader { data: wasm, at: 8 };
    let mut out = wasm.get(..8).context("not a wasm binary")?.to_vec();
    let mut rewritten = false;
    while r.at < wasm.len() {
        let start = r.at;
        let id = r.byte()?;
        let len = r.leb()? as usize;
        let end = r.at + len;
        if id != 7 {
            out.extend_from_slice(wasm.get(start..end).context("truncated wasm binary")?);
            r.at = end;
            continue;
        }
        let count = r.leb()?;
        let mut body = Vec::new();
        push_leb(&mut body, count);
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..count {
            let name = r.name()?;
            let name = back.get(&name).cloned().unwrap_or(name);
            if !names.insert(name.clone()) {
                bail!("two exports named `{name}`");
            }
            push_leb(&mut body, name.len() as u64);
            body.extend_from_slice(name.as_bytes());
            body.push(r.byte()?);
            push_leb(&mut body, r.leb()?);
        }
        if r.at != end {
            bail!("malformed export section");
        }
        out.push(id);
        push_leb(&mut out, body.len() as u64);
        out.extend_from_slice(&body);
        rewritten = true;
    }
    if !rewritten {
        bail!("the wasm binary has no export section");
    }
    Ok(out)
}

/// Unsigned LEB128, as wasm writes sizes and indices.
fn push_leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The module names of the imports in a `.wasm` binary, in order (empty when it has no import
/// section).
pub fn import_modules(wasm: &[u8]) -> Result<Vec<String>> {
    let mut r = Reader { data: wasm, at: 8 };
    if wasm.get(..4) != Some(b"\0asm".as_slice()) {
        bail!("not a wasm binary");
    }
    while r.at < wasm.len() {
        let id = r.byte()?;
        let len = r.leb()? as usize;
        let end = r.at + len;
        if id != 2 {
            r.at = end;
            continue;
        }
        let count = r.leb()?;
        let mut modules = Vec::new();
        for _ in 0..count {
            modules.push(r.name()?);
            r.name()?;
            match r.byte()? {
                // A function (type index) or a tag (attribute, type index).
                0 => {
                    r.leb()?;
                }
                4 => {
                    r.byte()?;
                    r.leb()?;
                }
                // A table (reference type, limits) or a memory (limits).
                1 => {
                    r.byte()?;
                    r.limits()?;
                }
                2 => r.limits()?,
                // A global (value type, mutability).
                3 => {
                    r.byte()?;
                    r.byte()?;
                }
                kind => bail!("unknown import kind {kind}"),
            }
        }
        return Ok(modules);
    }
    Ok(Vec::new())
}

/// A cursor over a wasm binary.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.at).context("truncated wasm binary")?;
        self.at += 1;
        Ok(b)
    }

    fn leb(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("overlong integer in wasm binary")
    }

    fn name(&mut self) -> Result<String> {
        let len = self.leb()? as usize;
        let bytes = self
            .data
            .get(self.at..self.at + len)
            .context("truncated wasm binary")?;
        self.at += len;
        Ok(String::from_utf8(bytes.to_vec())?)
    }

    fn limits(&mut self) -> Result<()> {
        let flags = self.byte()?;
        self.leb()?;
        if flags & 1 == 1 {
            self.leb()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"{
 "imports": [
  ["./p_bg.js", "__wbg_send_0123456789abcdef", "a"],
  ["./p_bg.js", "__wbindgen_init_externref_table", "b"]
 ],
"exports": [
  ["server_login", "A"],
  ["memory", "B"]
 ]
}
{
 "imports": [
  ["a", "a", "a"],
  ["a", "b", "c"]
 ],
"exports": [
  ["A", "A"],
  ["B", "B"]
 ]
}
"#;

    #[test]
    fn rounds_of_renames_chain() {
        let renames = Renames::parse(REPORT, "a").unwrap_or_default();
        assert_eq!(
            renames.modules.get("./p_bg.js").map(String::as_str),
            Some("a")
        );
        assert_eq!(
            renames
                .imports
                .get("__wbindgen_init_externref_table")
                .map(String::as_str),
            Some("c")
        );
        assert_eq!(
            renames.exports.get("server_login").map(String::as_str),
            Some("A")
        );
        assert!(Renames::parse("{\"imports\": [], \"exports\": [[\"x\", \"1a\"]]}", "a").is_err());
    }

    #[test]
    fn the_glue_is_rewritten_only_where_it_names_the_wasm() {
        let renames = Renames::parse(REPORT, "a").unwrap_or_default();
        let glue =
            "const import0 = {\n  __wbg_send_0123456789abcdef: function(a) { a.send(); },\n  \
                    __wbindgen_init_externref_table: function() {},\n};\n\
                    return { \"./p_bg.js\": import0 };\n\
                    function server_login() { return wasm.server_login(); }\n\
                    const m = wasm.memory; const n = mywasm.memory;\n";
        assert_eq!(
            renames.apply(glue).ok().as_deref(),
            Some(
                "const import0 = {\n  a: function(a) { a.send(); },\n  c: function() {},\n};\n\
                 return { \"a\": import0 };\n\
                 function server_login() { return wasm.A(); }\n\
                 const m = wasm.B; const n = mywasm.memory;\n"
            )
        );
        // An import named elsewhere, a missing import, a missing module: refused.
        let elsewhere = format!("{glue}__wbg_send_0123456789abcdef();\n");
        assert!(renames.apply(&elsewhere).is_err());
        let missing = glue.replace("__wbindgen_init_externref_table: function() {},\n", "");
        assert!(renames.apply(&missing).is_err());
        assert!(renames.apply(&glue.replace("./p_bg.js", "./q.js")).is_err());
    }

    #[test]
    fn kept_exports_get_their_names_back() {
        // (module (memory 1) (export "B" (memory 0)) (func) (export "A" (func 0)))
        let wasm = [
            0, b'a', b's', b'm', 1, 0, 0, 0, // header
            1, 4, 1, 0x60, 0, 0, // type section: one () -> ()
            3, 2, 1, 0, // function section
            5, 3, 1, 0, 1, // memory section
            7, 9, 2, 1, b'B', 2, 0, 1, b'A', 0, 0, // export section
            10, 4, 1, 2, 0, 0x0b, // code section
        ];
        let mut renames = Renames::parse(REPORT, "a").unwrap_or_default();
        let kept = keep_exports(&wasm, &mut renames, &["memory"]).unwrap_or_default();
        let mut expected = wasm[..23].to_vec();
        expected.extend_from_slice(&[7, 14, 2, 6]);
        expected.extend_from_slice(b"memory");
        expected.extend_from_slice(&[2, 0, 1, b'A', 0, 0, 10, 4, 1, 2, 0, 0x0b]);
        assert_eq!(kept, expected);
        assert_eq!(renames.exports.get("memory"), None);
        assert_eq!(
            renames.exports.get("server_login").map(String::as_str),
            Some("A")
        );
        // `memory` left as it was in the glue.
        assert!(renames.apply("x: wasm.memory").is_err()); // no imports defined
        let mut leb = Vec::new();
        push_leb(&mut leb, 300);
        assert_eq!(leb, [0xac, 0x02]);
    }

    #[test]
    fn import_modules_are_read_from_the_binary() {
        // (module (import "m" "f" (func)) (import "env" "mem" (memory 1 2)))
        let wasm = [
            0, b'a', b's', b'm', 1, 0, 0, 0, // header
            1, 4, 1, 0x60, 0, 0, // type section: one () -> ()
            2, 19, 2, 1, b'm', 1, b'f', 0, 0, 3, b'e', b'n', b'v', 3, b'm', b'e', b'm', 2, 1, 1, 2,
        ];
        assert_eq!(import_modules(&wasm).unwrap_or_default(), ["m", "env"]);
        assert!(import_modules(b"nope").is_err());
        assert!(import_modules(&wasm[..20]).is_err());
    }
}
