//! The crate's one XML reader: a small QDom-like tree over quick-xml, for every XML document
//! the protocol carries (`CVmEvent`s, VM configurations, host hardware info).
//!
//! It mirrors what the generated `readXml` methods see through `QDomDocument`: the root must be
//! one of the names the caller accepts; elements are kept down to a depth the caller chooses
//! (deeper ones are checked for well-formedness and dropped, so a reader never holds more of a
//! document than its model reaches); text nodes that are only whitespace do not exist (QDom
//! drops them); entity and character references are resolved; CR / CRLF become LF. Memory is
//! bounded by the input: nothing is allocated that the text does not hold.
//!
//! Errors are [`EventError`]s (`XmlSyntax`, `UnexpectedRoot`): each reader maps them into its
//! own error where it needs to.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;

use crate::event::{clip, EventError};

#[derive(Debug)]
pub(crate) enum Node {
    Element(Element),
    /// A text run (entity and character references resolved).
    Text(String),
    /// A CDATA section.
    CData(String),
    /// A comment or processing instruction.
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    /// Root only: attribute names and values in document order.
    pub(crate) attrs: Vec<(String, String)>,
    pub(crate) children: Vec<Node>,
}

impl Element {
    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// `element.firstChild().toText().data()`.
    pub(crate) fn text(&self) -> &str {
        match self.children.first() {
            Some(Node::Text(s) | Node::CData(s)) => s,
            _ => "",
        }
    }
}

fn syntax(position: u64, message: impl Into<String>) -> EventError {
    EventError::XmlSyntax {
        position,
        message: message.into(),
    }
}

/// XML end-of-line handling: CRLF and lone CR become LF.
fn normalize_eol(raw: &str) -> Cow<'_, str> {
    if raw.contains('\r') {
        Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(raw)
    }
}

/// Fixed messages keep quick-xml's `Display` machinery out of the WASM bundle.
fn escape_error(e: &quick_xml::escape::EscapeError) -> &'static str {
    use quick_xml::escape::EscapeError as E;
    match e {
        E::UnrecognizedEntity(..) => "unknown entity reference",
        E::UnterminatedEntity(_) => "unterminated entity reference",
        E::InvalidCharRef(_) => "invalid character reference",
    }
}

fn reader_error(e: &quick_xml::Error) -> &'static str {
    use quick_xml::errors::{IllFormedError as I, SyntaxError as S};
    match e {
        quick_xml::Error::Syntax(s) => match s {
            S::InvalidBangMarkup => "unknown <! markup",
            S::UnclosedPIOrXmlDecl => "unclosed processing instruction or xml declaration",
            S::UnclosedComment => "unclosed comment",
            S::UnclosedDoctype => "unclosed doctype",
            S::UnclosedCData => "unclosed cdata section",
            S::UnclosedTag => "unclosed tag",
        },
        quick_xml::Error::IllFormed(i) => match i {
            I::MissingDeclVersion(_) => "xml declaration without version",
            I::MissingDoctypeName => "doctype without name",
            I::MissingEndTag(_) => "missing end tag",
            I::UnmatchedEndTag(_) => "end tag without start tag",
            I::MismatchedEndTag { .. } => "mismatched end tag",
            I::DoubleHyphenInComment => "-- inside a comment",
        },
        quick_xml::Error::InvalidAttr(_) => "malformed attribute",
        quick_xml::Error::Escape(e) => escape_error(e),
        _ => "malformed xml",
    }
}

fn unescape(raw: &str, position: u64) -> Result<String, EventError> {
    let normalized = normalize_eol(raw);
    quick_xml::escape::unescape(&normalized)
        .map(Cow::into_owned)
        .map_err(|e| syntax(position, escape_error(&e)))
}

/// Checks the references of text that is not kept (no copy unless it holds references).
fn check_escapes(raw: &str, position: u64) -> Result<(), EventError> {
    quick_xml::escape::unescape(raw)
        .map(drop)
        .map_err(|e| syntax(position, escape_error(&e)))
}

fn utf8(bytes: &[u8], position: u64) -> Result<&str, EventError> {
    // The reader works on a &str, so this only fails if quick-xml splits inside a character.
    std::str::from_utf8(bytes).map_err(|_| syntax(position, "invalid utf-8 in markup"))
}

/// Checks every attribute of a start tag (as a DOM parser would) and, when `keep`, returns
/// them.
fn attributes(
    start: &BytesStart<'_>,
    position: u64,
    keep: bool,
) -> Result<Vec<(String, String)>, EventError> {
    let mut out = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|_| syntax(position, "malformed attribute"))?;
        let key = utf8(attr.key.as_ref(), position)?;
        let value = utf8(&attr.value, position)?;
        if !keep {
            check_escapes(value, position)?;
            continue;
        }
        let raw = normalize_eol(value).replace(['\n', '\t'], " ");
        let value = quick_xml::escape::unescape(&raw)
            .map_err(|e| syntax(position, escape_error(&e)))?
            .into_owned();
        out.push((key.to_owned(), value));
    }
    Ok(out)
}

/// Drops the whitespace-only text runs QDom never creates.
fn finish(mut e: Element) -> Element {
    e.children
        .retain(|n| !matches!(n, Node::Text(s) if s.chars().all(char::is_whitespace)));
    e
}

/// Which elements a reader keeps: given an element's depth (root = 1), its parent's name and
/// its own, whether to keep it (and look at its children). The others are checked for
/// well-formedness and dropped.
pub(crate) type Keep = fn(usize, &str, &str) -> bool;

/// Keeps every element (down to the kept depth).
pub(crate) fn keep_all(_depth: usize, _parent: &str, _name: &str) -> bool {
    true
}

/// Parses `input` into its tree: the root must be one of `roots`; elements deeper than
/// `kept_depth` or refused by `keep` are not kept.
pub(crate) fn parse(
    input: &str,
    roots: &[&str],
    kept_depth: usize,
    keep: Keep,
) -> Result<Element, EventError> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut reader = Reader::from_str(input);
    {
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
    }
    // Kept open elements; `skipped` counts open elements below KEPT_DEPTH.
    let mut stack: Vec<Element> = Vec::new();
    let mut skipped: usize = 0;
    let mut root: Option<Element> = None;

    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| syntax(reader.error_position(), reader_error(&e)))?;
        match event {
            XmlEvent::Start(ref s) | XmlEvent::Empty(ref s) => {
                let is_empty = matches!(event, XmlEvent::Empty(_));
                // Only the root's attributes are kept; the others are checked.
                let attrs = attributes(s, position, stack.is_empty() && root.is_none())?;
                let qname = s.name();
                let name = utf8(qname.as_ref(), position)?;
                if stack.is_empty() {
                    if root.is_some() {
                        return Err(syntax(position, "more than one root element"));
                    }
                    if !roots.contains(&name) {
                        return Err(EventError::UnexpectedRoot {
                            found: clip(name, 64),
                        });
                    }
                }
                let refused = stack
                    .last()
                    .is_some_and(|parent| !keep(stack.len() + 1, &parent.name, name));
                if skipped > 0 || stack.len() >= kept_depth || refused {
                    if !is_empty {
                        skipped += 1;
                    }
                    continue;
                }
                let element = Element {
                    name: name.to_owned(),
                    attrs: if stack.is_empty() { attrs } else { Vec::new() },
                    children: Vec::new(),
                };
                if is_empty {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            XmlEvent::End(_) => {
                if skipped > 0 {
                    skipped -= 1;
                } else if let Some(element) = stack.pop() {
                    close(&mut stack, &mut root, element);
                } else {
                    return Err(syntax(position, "end tag without start tag"));
                }
            }
            XmlEvent::Text(t) => {
                let raw = utf8(&t, position)?;
                let after_text = stack
                    .last()
                    .is_some_and(|p| matches!(p.children.last(), Some(Node::Text(_))));
                // Dropped text (below a skipped element, or the indentation between elements:
                // whitespace-only runs do not exist in QDom) is checked, not copied.
                if skipped > 0 || (!after_text && raw.bytes().all(|b| b.is_ascii_whitespace())) {
                    check_escapes(raw, position)?;
                    continue;
                }
                let text = unescape(raw, position)?;
                match stack.last_mut() {
                    Some(parent) => match parent.children.last_mut() {
                        Some(Node::Text(run)) => run.push_str(&text),
                        _ => parent.children.push(Node::Text(text)),
                    },
                    None if text.chars().all(char::is_whitespace) => {}
                    None => return Err(syntax(position, "text outside the root element")),
                }
            }
            XmlEvent::CData(c) => {
                let text = normalize_eol(utf8(&c, position)?).into_owned();
                if skipped > 0 {
                    continue;
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::CData(text)),
                    None => return Err(syntax(position, "cdata outside the root element")),
                }
            }
            XmlEvent::Comment(_) | XmlEvent::PI(_) => {
                if skipped == 0 {
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(Node::Other);
                    }
                }
            }
            XmlEvent::Decl(_) => {
                if root.is_some() || !stack.is_empty() {
                    return Err(syntax(position, "xml declaration inside the document"));
                }
            }
            XmlEvent::DocType(_) => {
                if root.is_some() || !stack.is_empty() {
                    return Err(syntax(position, "doctype inside the document"));
                }
            }
            XmlEvent::Eof => {
                if !stack.is_empty() || skipped > 0 {
                    return Err(syntax(
                        position,
                        "unexpected end of document inside an element",
                    ));
                }
                return root.ok_or_else(|| syntax(position, "no root element"));
            }
        }
    }
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    let element = finish(element);
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

impl Element {
    /// The first child element called `name` (`firstChildElement(name)`).
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// The first element along `path` below this one.
    pub(crate) fn path(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, name| e.child(name))
    }
}
