//! What the XML readers (GRUG, hwloc) share: reading the next event and an
//! element's attributes, with errors as plain messages each reader wraps.

use std::collections::HashMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// The next event, or an error naming the byte where the XML broke.
pub(super) fn next_event<'a>(reader: &mut Reader<&'a [u8]>) -> Result<Event<'a>, String> {
    reader
        .read_event()
        .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))
}

/// `e`'s attributes, values normalized; an error names the element.
pub(super) fn attributes(e: &BytesStart<'_>) -> Result<HashMap<String, String>, String> {
    let name = e.name().as_ref().to_string();
    e.attributes()
        .map(|a| {
            let a = a.map_err(|x| format!("bad attribute in <{name}>: {x}"))?;
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|x| format!("bad attribute value in <{name}>: {x}"))?
                .into_owned();
            Ok((key, value))
        })
        .collect()
}
