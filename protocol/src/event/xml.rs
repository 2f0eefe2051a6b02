//! XML form of a `CVmEvent`: `CVmEventBase::getXml` + `CBaseNode::toString()`.
//!
//! # Writer
//!
//! `CBaseNode::toString()` saves a `QDomDocument` with indent 1 and no `<?xml?>` prolog, then
//! replaces NUL characters with spaces. Exactly:
//!
//! ```text
//! <ParallelsEvent dyn_lists="" id="-1">
//!  <EventType>100000</EventType>          EventType..EventIssuerType as signed int32
//!  <EventLevel>0</EventLevel>
//!  <EventCode>0</EventCode>
//!  <EventNeedResponse>0</EventNeedResponse>
//!  <EventIssuerType>0</EventIssuerType>
//!  <EventIssuerId>..</EventIssuerId>      empty strings still give <X></X> (an empty text node)
//!  <EventSource></EventSource>
//!  <EventInitialRequestId>..</EventInitialRequestId>
//!  <EventParameters dyn_lists="EventParameter N">     N = number of params; no params: .../>
//!   <EventParameter dyn_lists="" id="0">             ids 0..N-1
//!    <IsList>1</IsList>                               lists only
//!    <Name>..</Name>
//!    <Type>1</Type>
//!    <Value>..</Value>                                non-lists
//!    <Value dyn_lists="ListItem">                     lists (empty list: <Value dyn_lists="ListItem"/>)
//!     <ListItem>..</ListItem>
//!    </Value>
//!    <Data>base64</Data>                              types 3 (CData) and 7 (VmConfiguration)
//!   </EventParameter>
//!  </EventParameters>
//!  <EventId>0</EventId>                              unsigned 64-bit
//! </ParallelsEvent>
//! ```
//! and a final newline. Text is escaped as QDom does for text nodes: `&` → `&amp;`, `<` → `&lt;`,
//! `>` → `&gt;` only after `]]`, CR → `&#xd;`; quotes, LF and TAB stay literal. Attribute values
//! (only `dyn_lists` and `id` here) also escape `"`, LF, CR and TAB. Characters are written as
//! UTF-8 (`QDomDocument::save` sets a UTF-8 codec). One deliberate difference: Qt 5's
//! `encodeText` checks encodability per UTF-16 unit and so mangles characters outside the BMP
//! (the low surrogate becomes a `&#x..;` reference, the high one a `?`); we write them as plain
//! UTF-8, which Qt's reader decodes correctly.
//!
//! Parameter ids are always renumbered 0..N-1 (the real writer keeps ids read from a parsed
//! document; real peers number them 0..N-1 anyway) and unknown elements of a parsed document are
//! not kept (the real `m_mapExtDoc` re-emits them).
//!
//! # Reader
//!
//! Mirrors the generated `readXml` methods on top of a `QDomDocument`:
//! * root `<ParallelsEvent>`; `<VirtuozzoEvent>` is also accepted (the current libprlcommon
//!   reader itself only accepts `ParallelsEvent`, so we never write the other name);
//! * child elements in any order, unknown ones ignored; for a repeated element the last one wins,
//!   except that only the first `<EventParameters>` is read and list items come from the first
//!   `<Value>` of a parameter;
//! * a field's text is its element's *first child node* if that is text or CDATA, else empty.
//!   As in QDom, text nodes that are only whitespace (`QChar::isSpace`) do not exist, so a
//!   whitespace-only value reads back as empty; literal CR/CRLF become LF (XML end-of-line rule);
//! * required: `EventType`, `EventLevel`, `EventCode`, `EventNeedResponse`, `EventIssuerType`,
//!   `EventIssuerId`, `EventSource`, `EventInitialRequestId`, and `Name` and `Type` in each
//!   parameter; a missing one is [`EventError::MissingElement`] (the real reader fails with
//!   `PRL_ERR_PARSE_VM_CONFIG`);
//! * numbers parse like `QString::toLongLong()` (whitespace, sign, decimal, 64-bit range) and are
//!   then truncated to 32 bits, so `-2147482832` and `2147484464` both give `0x80000330`. Where
//!   Qt silently yields 0 for text that is not a number we return [`EventError::BadNumber`];
//! * `<Data>` is base64, whitespace ignored, padding optional; other junk (which
//!   `QByteArray::fromBase64` would skip) is [`EventError::BadBase64`];
//! * the root `id` attribute (default -1) goes to [`Event::item_id`], the attribute order to
//!   [`Event::attr_order`]; parameter ids and `dyn_lists` values are ignored.

use base64::Engine as _;

use super::{
    clip, qt_parse_i32, qt_parse_i64, qt_parse_u64, AttrOrder, Event, EventError, EventParam,
    ParamType, ParamValue,
};
use crate::dom::{self, Element};

/// The root tag the writer uses.
pub(super) const ROOT_TAG: &str = "ParallelsEvent";
/// The other root tag readers accept.
pub(crate) const LEGACY_ROOT_TAG: &str = "VirtuozzoEvent";
/// The root tags an event reader accepts.
pub(crate) const ROOT_TAGS: [&str; 2] = [ROOT_TAG, LEGACY_ROOT_TAG];

/// `QByteArray::toBase64()` / lenient `fromBase64()`.
const B64_WRITE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64_READ: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

// ------------------------------------------------------------------------------------------------
// Writer

/// QDom text-node escaping (`encodeText(.., encodeQuotes=false, performAVN=false, encodeEOLs=true)`).
pub(crate) fn push_text(out: &mut String, text: &str) {
    // Byte-wise: every character escaped is ASCII, and ASCII bytes never occur inside a
    // multi-byte UTF-8 sequence, so the runs between them are copied whole (VM lists carry
    // megabytes of escaped XML).
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement = match b {
            b'<' => "&lt;",
            b'&' => "&amp;",
            b'>' if i >= 2 && bytes.get(i - 2..i) == Some(b"]]") => "&gt;",
            b'\r' => "&#xd;",
            // CBaseNode::toString() patches NULs into spaces after saving.
            0 => " ",
            _ => continue,
        };
        out.push_str(text.get(start..i).unwrap_or_default());
        out.push_str(replacement);
        start = i + 1;
    }
    out.push_str(text.get(start..).unwrap_or_default());
}

/// QDom attribute escaping (`encodeText(.., encodeQuotes=true, performAVN=true)`).
fn push_attr_value(out: &mut String, text: &str) {
    let mut prev2 = '\0';
    let mut prev1 = '\0';
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '&' => out.push_str("&amp;"),
            '>' if prev1 == ']' && prev2 == ']' => out.push_str("&gt;"),
            '\n' => out.push_str("&#xa;"),
            '\r' => out.push_str("&#xd;"),
            '\t' => out.push_str("&#x9;"),
            '\0' => out.push(' '),
            _ => out.push(c),
        }
        prev2 = prev1;
        prev1 = c;
    }
}

fn push_indent(out: &mut String, depth: usize) {
    out.extend(std::iter::repeat_n(' ', depth));
}

/// `<name a="..">` (or `/>` when `empty`) at `depth`, newline after.
fn push_open(out: &mut String, depth: usize, name: &str, attrs: &[(&str, &str)], empty: bool) {
    push_indent(out, depth);
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        push_attr_value(out, v);
        out.push('"');
    }
    out.push_str(if empty { "/>\n" } else { ">\n" });
}

fn push_close(out: &mut String, depth: usize, name: &str) {
    push_indent(out, depth);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// An element holding one (possibly empty) text node: `<name>text</name>`.
fn push_leaf(out: &mut String, depth: usize, name: &str, text: &str) {
    push_indent(out, depth);
    out.push('<');
    out.push_str(name);
    out.push('>');
    push_text(out, text);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

fn ordered<'a>(order: AttrOrder, dyn_lists: &'a str, id: &'a str) -> [(&'a str, &'a str); 2] {
    match order {
        AttrOrder::DynListsFirst => [("dyn_lists", dyn_lists), ("id", id)],
        AttrOrder::IdFirst => [("id", id), ("dyn_lists", dyn_lists)],
    }
}

/// 32-bit fields are C++ enums / `int` printed by `QString::arg(int)`.
fn signed(v: u32) -> String {
    (v as i32).to_string()
}

fn push_param(out: &mut String, p: &EventParam, id: usize, order: AttrOrder, base: usize) {
    let id = id.to_string();
    push_open(
        out,
        base + 2,
        "EventParameter",
        &ordered(order, "", &id),
        false,
    );
    let is_list = matches!(p.value, ParamValue::List(_));
    if is_list {
        push_leaf(out, base + 3, "IsList", "1");
    }
    push_leaf(out, base + 3, "Name", &p.name);
    push_leaf(out, base + 3, "Type", &signed(p.param_type.0));
    match &p.value {
        ParamValue::Plain(s) => push_leaf(out, base + 3, "Value", s),
        ParamValue::CData(_) | ParamValue::Binary(_) => push_leaf(out, base + 3, "Value", ""),
        ParamValue::List(items) => {
            let attrs = [("dyn_lists", "ListItem")];
            push_open(out, base + 3, "Value", &attrs, items.is_empty());
            if !items.is_empty() {
                for item in items {
                    push_leaf(out, base + 4, "ListItem", item);
                }
                push_close(out, base + 3, "Value");
            }
        }
    }
    if p.param_type.carries_data() {
        let data = match &p.value {
            ParamValue::CData(b) => B64_WRITE.encode(b),
            _ => String::new(),
        };
        push_leaf(out, base + 3, "Data", &data);
    }
    push_close(out, base + 2, "EventParameter");
}

pub(super) fn write(e: &Event, base: usize) -> String {
    let mut out = String::with_capacity(
        600 + e
            .params
            .iter()
            .map(|p| {
                160 + p.name.len()
                    + match &p.value {
                        ParamValue::Plain(s) => s.len(),
                        ParamValue::List(v) => v.iter().map(|s| s.len() + 30).sum(),
                        ParamValue::CData(b) => b.len() / 3 * 4 + 4,
                        ParamValue::Binary(_) => 0,
                    }
            })
            .sum::<usize>(),
    );
    let item_id = e.item_id.to_string();
    push_open(
        &mut out,
        base,
        ROOT_TAG,
        &ordered(e.attr_order, "", &item_id),
        false,
    );
    push_leaf(&mut out, base + 1, "EventType", &signed(e.event_type));
    push_leaf(&mut out, base + 1, "EventLevel", &signed(e.level));
    push_leaf(&mut out, base + 1, "EventCode", &signed(e.code));
    push_leaf(
        &mut out,
        base + 1,
        "EventNeedResponse",
        &signed(e.need_response),
    );
    push_leaf(
        &mut out,
        base + 1,
        "EventIssuerType",
        &signed(e.issuer_type),
    );
    push_leaf(&mut out, base + 1, "EventIssuerId", &e.issuer_id);
    push_leaf(&mut out, base + 1, "EventSource", &e.source);
    push_leaf(
        &mut out,
        base + 1,
        "EventInitialRequestId",
        &e.initial_request_id,
    );
    let dyn_lists = format!("EventParameter {}", e.params.len());
    let attrs = [("dyn_lists", dyn_lists.as_str())];
    push_open(
        &mut out,
        base + 1,
        "EventParameters",
        &attrs,
        e.params.is_empty(),
    );
    if !e.params.is_empty() {
        for (i, p) in e.params.iter().enumerate() {
            push_param(&mut out, p, i, e.attr_order, base);
        }
        push_close(&mut out, base + 1, "EventParameters");
    }
    push_leaf(&mut out, base + 1, "EventId", &e.event_id.to_string());
    push_close(&mut out, base, ROOT_TAG);
    out
}

// ------------------------------------------------------------------------------------------------
// Reader: the event model read from the crate's QDom-like tree (`crate::dom`).

/// Elements deeper than this (root = 1) are checked for well-formedness but not kept:
/// root > EventParameters > EventParameter > Value > ListItem.
pub(crate) const KEPT_DEPTH: usize = 5;

/// A 32-bit field read with `toLongLong()` and cast to the C++ enum / `int`.
fn number32(field: &'static str, text: &str) -> Result<u32, EventError> {
    let v = qt_parse_i64(text).ok_or_else(|| EventError::BadNumber {
        field,
        text: clip(text, 32),
    })?;
    // Keeping the low 32 bits is the C++ conversion the real reader performs.
    Ok(v as u32)
}

#[derive(Default)]
struct Seen {
    event_type: bool,
    level: bool,
    code: bool,
    need_response: bool,
    issuer_type: bool,
    issuer_id: bool,
    source: bool,
    initial_request_id: bool,
}

pub(super) fn read(input: &str) -> Result<Event, EventError> {
    read_element(&dom::parse(input, &ROOT_TAGS, KEPT_DEPTH, dom::keep_all)?)
}

/// The event an element of a parsed document holds (the root of an event document, or an
/// event nested in a larger document such as a VM configuration's `InternalVmInfo`).
pub(crate) fn read_element(root: &Element) -> Result<Event, EventError> {
    let mut e = Event::default();

    let mut id_pos = None;
    let mut dyn_pos = None;
    for (i, (k, v)) in root.attrs.iter().enumerate() {
        match k.as_str() {
            "id" => {
                id_pos = Some(i);
                e.item_id = qt_parse_i32(v).ok_or_else(|| EventError::BadNumber {
                    field: "id",
                    text: clip(v, 32),
                })?;
            }
            "dyn_lists" => dyn_pos = Some(i),
            _ => {}
        }
    }
    e.attr_order = match (id_pos, dyn_pos) {
        (Some(i), Some(d)) if i < d => AttrOrder::IdFirst,
        _ => AttrOrder::DynListsFirst,
    };

    let mut seen = Seen::default();
    let mut params_read = false;
    for child in root.elements() {
        let text = child.text();
        match child.name.as_str() {
            "EventType" => {
                e.event_type = number32("EventType", text)?;
                seen.event_type = true;
            }
            "EventLevel" => {
                e.level = number32("EventLevel", text)?;
                seen.level = true;
            }
            "EventCode" => {
                e.code = number32("EventCode", text)?;
                seen.code = true;
            }
            "EventNeedResponse" => {
                e.need_response = number32("EventNeedResponse", text)?;
                seen.need_response = true;
            }
            "EventIssuerType" => {
                e.issuer_type = number32("EventIssuerType", text)?;
                seen.issuer_type = true;
            }
            "EventIssuerId" => {
                e.issuer_id = text.to_owned();
                seen.issuer_id = true;
            }
            "EventSource" => {
                e.source = text.to_owned();
                seen.source = true;
            }
            "EventInitialRequestId" => {
                e.initial_request_id = text.to_owned();
                seen.initial_request_id = true;
            }
            "EventId" => {
                e.event_id = qt_parse_u64(text).ok_or_else(|| EventError::BadNumber {
                    field: "EventId",
                    text: clip(text, 32),
                })?;
            }
            "EventParameters" if !params_read => {
                params_read = true;
                for (index, p) in child
                    .elements()
                    .filter(|p| p.name == "EventParameter")
                    .enumerate()
                {
                    e.params.push(read_param(p, index)?);
                }
            }
            _ => {}
        }
    }

    let required = [
        (seen.event_type, "EventType"),
        (seen.level, "EventLevel"),
        (seen.code, "EventCode"),
        (seen.need_response, "EventNeedResponse"),
        (seen.issuer_type, "EventIssuerType"),
        (seen.issuer_id, "EventIssuerId"),
        (seen.source, "EventSource"),
        (seen.initial_request_id, "EventInitialRequestId"),
    ];
    if let Some((_, element)) = required.iter().find(|(seen, _)| !seen) {
        return Err(EventError::MissingElement {
            parent: ROOT_TAG,
            element,
        });
    }
    Ok(e)
}

fn read_param(p: &Element, index: usize) -> Result<EventParam, EventError> {
    let mut is_list = false;
    let mut name = None;
    let mut param_type = None;
    let mut value = String::new();
    let mut items: Option<Vec<String>> = None;
    let mut data = Vec::new();
    for child in p.elements() {
        let text = child.text();
        match child.name.as_str() {
            "IsList" => {
                let v = qt_parse_i32(text).ok_or_else(|| EventError::BadNumber {
                    field: "IsList",
                    text: clip(text, 32),
                })?;
                is_list = v != 0;
            }
            "Name" => name = Some(text.to_owned()),
            "Type" => param_type = Some(ParamType(number32("Type", text)?)),
            "Value" => {
                value = text.to_owned();
                if items.is_none() {
                    items = Some(
                        child
                            .elements()
                            .filter(|i| i.name == "ListItem")
                            .map(|i| i.text().to_owned())
                            .collect(),
                    );
                }
            }
            "Data" => {
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                data = B64_READ
                    .decode(compact.as_bytes())
                    .map_err(|_| EventError::BadBase64 { index })?;
            }
            _ => {}
        }
    }
    let name = name.ok_or(EventError::MissingElement {
        parent: "EventParameter",
        element: "Name",
    })?;
    let param_type = param_type.ok_or(EventError::MissingElement {
        parent: "EventParameter",
        element: "Type",
    })?;
    let value = if is_list {
        ParamValue::List(items.unwrap_or_default())
    } else if param_type.carries_data() && (!data.is_empty() || value.is_empty()) {
        ParamValue::CData(data)
    } else {
        ParamValue::Plain(value)
    };
    Ok(EventParam {
        name,
        param_type,
        value,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_text(&mut out, s);
        out
    }

    fn attr(s: &str) -> String {
        let mut out = String::new();
        push_attr_value(&mut out, s);
        out
    }

    #[test]
    fn text_escaping_matches_qdom() {
        assert_eq!(text("a<b>c&d\"e'f"), "a&lt;b>c&amp;d\"e'f");
        assert_eq!(text("]]>"), "]]&gt;");
        assert_eq!(text("]>]]]>"), "]>]]]&gt;");
        assert_eq!(text("] ]>"), "] ]>");
        assert_eq!(text("a\r\nb\tc"), "a&#xd;\nb\tc");
        assert_eq!(text("a\0b"), "a b");
        assert_eq!(text("é😀"), "é😀");
    }

    #[test]
    fn attribute_escaping_matches_qdom() {
        assert_eq!(
            attr("a<\"&\n\r\t]]>"),
            "a&lt;&quot;&amp;&#xa;&#xd;&#x9;]]&gt;"
        );
        assert_eq!(attr("EventParameter 5"), "EventParameter 5");
    }

    #[test]
    fn numbers_are_written_signed_and_read_either_way() {
        let e = Event {
            code: 0x8000_0330,
            event_type: u32::MAX,
            event_id: u64::MAX,
            ..Event::default()
        };
        let xml = e.to_xml();
        assert!(xml.contains("<EventCode>-2147482832</EventCode>"), "{xml}");
        assert!(xml.contains("<EventType>-1</EventType>"), "{xml}");
        assert!(
            xml.contains("<EventId>18446744073709551615</EventId>"),
            "{xml}"
        );
        assert_eq!(read(&xml).unwrap(), e);
        let unsigned = xml.replace("-2147482832", " 2147484464 ");
        assert_eq!(read(&unsigned).unwrap().code, 0x8000_0330);
    }

    #[test]
    fn empty_event_layout() {
        assert_eq!(
            Event::default().to_xml(),
            "<ParallelsEvent dyn_lists=\"\" id=\"-1\">\n <EventType>100000</EventType>\n \
             <EventLevel>0</EventLevel>\n <EventCode>0</EventCode>\n \
             <EventNeedResponse>0</EventNeedResponse>\n <EventIssuerType>0</EventIssuerType>\n \
             <EventIssuerId></EventIssuerId>\n <EventSource></EventSource>\n \
             <EventInitialRequestId></EventInitialRequestId>\n \
             <EventParameters dyn_lists=\"EventParameter 0\"/>\n <EventId>0</EventId>\n\
             </ParallelsEvent>\n"
        );
    }

    #[test]
    fn param_layouts() {
        let mut e = Event {
            attr_order: AttrOrder::IdFirst,
            ..Event::default()
        };
        e.add_list("l", ParamType::STRING, Vec::<String>::new())
            .add_binary("b", vec![1, 2])
            .add_param(EventParam::plain("p", ParamType::CDATA, "v"))
            .add_param(EventParam {
                name: "c".into(),
                param_type: ParamType::STRING,
                value: ParamValue::CData(b"lost".to_vec()),
            });
        let xml = e.to_xml();
        let expected = concat!(
            "  <EventParameter id=\"0\" dyn_lists=\"\">\n   <IsList>1</IsList>\n   <Name>l</Name>\n",
            "   <Type>1</Type>\n   <Value dyn_lists=\"ListItem\"/>\n  </EventParameter>\n",
            "  <EventParameter id=\"1\" dyn_lists=\"\">\n   <Name>b</Name>\n   <Type>0</Type>\n",
            "   <Value></Value>\n  </EventParameter>\n",
            "  <EventParameter id=\"2\" dyn_lists=\"\">\n   <Name>p</Name>\n   <Type>3</Type>\n",
            "   <Value>v</Value>\n   <Data></Data>\n  </EventParameter>\n",
            "  <EventParameter id=\"3\" dyn_lists=\"\">\n   <Name>c</Name>\n   <Type>1</Type>\n",
            "   <Value></Value>\n  </EventParameter>\n",
        );
        assert!(xml.contains(expected), "{xml}");
        assert!(xml.starts_with("<ParallelsEvent id=\"-1\" dyn_lists=\"\">\n"));
        let back = read(&xml).unwrap();
        assert_eq!(back.params[0].value, ParamValue::List(vec![]));
        // Binary bytes and CData under a non-data type have no XML form.
        assert_eq!(back.params[1].value, ParamValue::Plain(String::new()));
        assert_eq!(back.params[2].value, ParamValue::Plain("v".into()));
        assert_eq!(back.params[3].value, ParamValue::Plain(String::new()));
    }

    const HEAD: &str = "<EventLevel>0</EventLevel><EventCode>0</EventCode>\
        <EventNeedResponse>0</EventNeedResponse><EventIssuerType>0</EventIssuerType>\
        <EventIssuerId>i</EventIssuerId><EventSource>s</EventSource>\
        <EventInitialRequestId>r</EventInitialRequestId>";

    #[test]
    fn reader_follows_qdom_and_read_xml() {
        let xml = format!(
            "<VirtuozzoEvent dyn_lists='' id=' 7 '>{HEAD}<EventType>1</EventType>\
             <EventType>2</EventType>\
             <EventParameters>\
               <EventParameter id='9'><Name>a</Name><Type>1</Type>\
                 <Value>first</Value><Value>  last </Value></EventParameter>\
               <Other/>\
               <EventParameter><Type>1</Type><Name>ws</Name><Value> \t\n\u{a0}</Value></EventParameter>\
               <EventParameter><Name>cm</Name><Type>1</Type><Value><!--c-->x</Value></EventParameter>\
               <EventParameter><Name>cd</Name><Type>1</Type><Value>  <![CDATA[<x>]]>y</Value></EventParameter>\
               <EventParameter><Name>ent</Name><Type>1</Type><Value>&lt;&#x263a;&#65;&amp;&quot;</Value></EventParameter>\
               <EventParameter><IsList>1</IsList><Name>l</Name><Type>1</Type>\
                 <Value><ListItem>a</ListItem><ListItem/><Junk/><ListItem>c</ListItem></Value>\
                 <Value><ListItem>ignored</ListItem></Value></EventParameter>\
               <EventParameter><Name>crlf</Name><Type>1</Type><Value>a\r\nb\rc&#xd;</Value></EventParameter>\
             </EventParameters>\
             <EventParameters><EventParameter><Name>ignored</Name><Type>1</Type></EventParameter></EventParameters>\
             </VirtuozzoEvent>"
        );
        let e = read(&xml).unwrap();
        assert_eq!(e.item_id, 7);
        assert_eq!(e.attr_order, AttrOrder::DynListsFirst);
        assert_eq!(e.event_type, 2, "the last occurrence wins");
        assert_eq!(e.event_id, 0, "EventId is optional");
        let names: Vec<_> = e.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a", "ws", "cm", "cd", "ent", "l", "crlf"]);
        assert_eq!(e.string("a"), Some("  last "));
        assert_eq!(
            e.string("ws"),
            Some(""),
            "whitespace-only text nodes do not exist"
        );
        assert_eq!(e.string("cm"), Some(""), "the first child is a comment");
        assert_eq!(
            e.string("cd"),
            Some("<x>"),
            "the first child is the CDATA section"
        );
        assert_eq!(e.string("ent"), Some("<☺A&\""));
        assert_eq!(
            e.list("l"),
            Some(&["a".to_owned(), String::new(), "c".to_owned()][..])
        );
        assert_eq!(e.string("crlf"), Some("a\nb\nc\r"));
    }

    #[test]
    fn reader_records_attribute_order() {
        let ids_first = format!("<ParallelsEvent id=\"-1\" dyn_lists=\"\">{HEAD}<EventType>1</EventType></ParallelsEvent>");
        assert_eq!(read(&ids_first).unwrap().attr_order, AttrOrder::IdFirst);
        let bare = format!("<ParallelsEvent>{HEAD}<EventType>1</EventType></ParallelsEvent>");
        let e = read(&bare).unwrap();
        assert_eq!((e.attr_order, e.item_id), (AttrOrder::DynListsFirst, -1));
    }

    #[test]
    fn reader_skips_bom_prolog_and_doctype() {
        let xml = format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE ParallelsEvent>\n\
             <ParallelsEvent>{HEAD}<EventType>1</EventType></ParallelsEvent>\n"
        );
        assert_eq!(read(&xml).unwrap().source, "s");
    }
}
