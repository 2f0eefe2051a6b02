//! Reading the XML documents replies carry (VM configurations, host hardware info, the VM info
//! event and its `<Security>`), through the crate's one XML reader (`crate::dom`), the way the
//! generated `readXml` methods of libprlxmlmodel read them: the first element of a name counts,
//! unknown elements are ignored, numbers parse like `QString::toInt()`/`toUInt()` (surrounding
//! whitespace, a sign, decimal digits). Where Qt would silently read a malformed number as 0,
//! these readers return [`DocumentError::BadNumber`]; a missing optional element gives the
//! model's default.

use crate::dom::{self, Element};
use crate::event::{clip, qt_parse_i64, EventError};

/// Why a document carried in a reply or an event cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The text is not well-formed XML.
    #[error("{document}: {source}")]
    Xml {
        /// Which document.
        document: &'static str,
        /// What is wrong.
        #[source]
        source: EventError,
    },
    /// The root element is not one the document may have.
    #[error("{document}: unexpected root element <{found}>, expected <{expected}>")]
    UnexpectedRoot {
        /// Which document.
        document: &'static str,
        /// The root element's name (cut to 64 characters).
        found: String,
        /// The name the writer uses.
        expected: &'static str,
    },
    /// An element or parameter the document cannot do without is missing.
    #[error("{document}: missing {element}")]
    Missing {
        /// Which document.
        document: &'static str,
        /// The element path or parameter name.
        element: &'static str,
    },
    /// A numeric field does not hold a number in range.
    #[error("{document}: bad number in {field}: {text:?}")]
    BadNumber {
        /// Which document.
        document: &'static str,
        /// The element path or parameter name.
        field: &'static str,
        /// The offending text (cut to 32 characters).
        text: String,
    },
    /// A nested event (a VM configuration's `InternalVmInfo`) is not a valid event.
    #[error("{document}: bad nested event: {source}")]
    Event {
        /// Which document.
        document: &'static str,
        /// What is wrong.
        #[source]
        source: EventError,
    },
}

impl DocumentError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Xml { .. } => "xml_syntax",
            Self::UnexpectedRoot { .. } => "unexpected_root",
            Self::Missing { .. } => "missing_element",
            Self::BadNumber { .. } => "bad_number",
            Self::Event { .. } => "bad_event",
        }
    }
}

/// One kind of document: its name in errors and the root tags it may have (the writer's
/// first, then the legacy `Parallels*` one the real reader also accepts).
pub(crate) struct DocumentKind {
    pub(crate) name: &'static str,
    pub(crate) roots: [&'static str; 2],
    /// How deep the reader keeps elements (root = 1).
    pub(crate) depth: usize,
    /// Which elements it keeps (a reader needs a few of a large document's).
    pub(crate) keep: dom::Keep,
}

impl DocumentKind {
    /// Parses `text` into its tree (the root checked).
    pub(crate) fn parse(&self, text: &str) -> Result<Element, DocumentError> {
        dom::parse(text, &self.roots, self.depth, self.keep).map_err(|e| match e {
            EventError::UnexpectedRoot { found } => DocumentError::UnexpectedRoot {
                document: self.name,
                found,
                expected: self.roots[0],
            },
            source => DocumentError::Xml {
                document: self.name,
                source,
            },
        })
    }

    /// A reader of fields of `root`.
    pub(crate) fn fields<'a>(&self, root: &'a Element) -> Fields<'a> {
        Fields {
            document: self.name,
            root,
        }
    }
}

/// Typed reads of the fields of one document (paths relative to its root).
pub(crate) struct Fields<'a> {
    pub(crate) document: &'static str,
    pub(crate) root: &'a Element,
}

impl<'a> Fields<'a> {
    /// The text of the first element at `path` (`""` when absent).
    pub(crate) fn text(&self, path: &[&str]) -> &'a str {
        self.root.path(path).map(Element::text).unwrap_or("")
    }

    /// The element at `path`, if present.
    pub(crate) fn element(&self, path: &[&str]) -> Option<&'a Element> {
        self.root.path(path)
    }

    /// The element at `path` must be there.
    pub(crate) fn required(
        &self,
        path: &[&str],
        name: &'static str,
    ) -> Result<&'a str, DocumentError> {
        self.root
            .path(path)
            .map(Element::text)
            .ok_or(DocumentError::Missing {
                document: self.document,
                element: name,
            })
    }

    /// An unsigned field (`toUInt`): `default` when absent or empty, an error when not a
    /// number in range.
    pub(crate) fn uint(
        &self,
        path: &[&str],
        field: &'static str,
        default: u32,
    ) -> Result<u32, DocumentError> {
        match self.root.path(path).map(Element::text) {
            None | Some("") => Ok(default),
            Some(text) => parse_u32(self.document, field, text),
        }
    }

    /// A signed field (`toInt`), read back as its 32 bits.
    pub(crate) fn int(
        &self,
        path: &[&str],
        field: &'static str,
        default: i32,
    ) -> Result<i32, DocumentError> {
        match self.root.path(path).map(Element::text) {
            None | Some("") => Ok(default),
            Some(text) => parse_i32(self.document, field, text),
        }
    }

    /// A boolean field: a number, non-zero is true.
    pub(crate) fn flag(&self, path: &[&str], field: &'static str) -> Result<bool, DocumentError> {
        Ok(self.int(path, field, 0)? != 0)
    }
}

/// `QString::toUInt()` of a field, an error where Qt would give 0 for junk.
pub(crate) fn parse_u32(
    document: &'static str,
    field: &'static str,
    text: &str,
) -> Result<u32, DocumentError> {
    qt_parse_i64(text)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| DocumentError::BadNumber {
            document,
            field,
            text: clip(text, 32),
        })
}

/// `QString::toInt()` of a field; values up to `u32::MAX` are taken as their 32 bits (a
/// `PRL_RESULT` or state printed unsigned reads the same as printed signed).
pub(crate) fn parse_i32(
    document: &'static str,
    field: &'static str,
    text: &str,
) -> Result<i32, DocumentError> {
    qt_parse_i64(text)
        .filter(|v| (i64::from(i32::MIN)..=i64::from(u32::MAX)).contains(v))
        .map(|v| v as i32)
        .ok_or_else(|| DocumentError::BadNumber {
            document,
            field,
            text: clip(text, 32),
        })
}

/// What goes into one `{{key}}` slot of a document template.
pub(crate) enum Slot {
    /// Text, escaped as QDom escapes a text node.
    Text(String),
    /// Ready-made XML lines (a nested element), inserted as they are.
    Raw(String),
}

/// Fills the `{{key}}` slots of a template (a real serializer's document with its values
/// replaced by slots). A key `slot` does not know is kept literally (the templates' tests
/// check that none is left).
pub(crate) fn fill_template(template: &str, slot: impl Fn(&str) -> Option<Slot>) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let (before, tail) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = tail.find("}}") else {
            out.push_str(tail);
            return out;
        };
        let key = tail.get(2..end).unwrap_or_default();
        match slot(key) {
            Some(Slot::Text(text)) => crate::event::xml::push_text(&mut out, &text),
            Some(Slot::Raw(xml)) => out.push_str(&xml),
            None => out.push_str(tail.get(..end + 2).unwrap_or_default()),
        }
        rest = tail.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}
