//! Counting a repeated field in protobuf messages by their wire format, and the gRPC message
//! framing around them.

use std::{fmt, ops::Range};

use super::ConfigError;

/// The largest protobuf field number.
const MAX_FIELD: u32 = (1 << 29) - 1;
/// How deeply (deprecated) groups may nest before the scanner refuses the message.
const MAX_GROUP_DEPTH: usize = 64;

/// How the elements of a packed repeated scalar field are encoded (proto3 packs repeated
/// numbers by default: `repeated int64 ids = 1` arrives as one length-delimited record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Packed {
    /// `int32`, `int64`, `uint32`, `uint64`, `sint32`, `sint64`, `bool`, enums.
    Varint,
    /// `fixed32`, `sfixed32`, `float`.
    Fixed32,
    /// `fixed64`, `sfixed64`, `double`.
    Fixed64,
}

/// Counts the occurrences of one top-level field of a protobuf message from its wire format,
/// chunk by chunk, without a schema.
///
/// Each record of the field is one item: each element of a `repeated` message, string or
/// bytes field, or of an unpacked repeated number. For a packed repeated number (proto3's
/// default for `repeated int64`), say how it is packed with [`FieldScanner::packed`] and each
/// element of the packed record counts. Fields nested in other fields are not looked at: only
/// the top level of the message is walked, length-delimited values are skipped by their length.
/// Each item's span is the bytes of its value (an embedded message's encoding, a string's
/// bytes, a number's varint).
///
/// ```
/// use tower_api_errors::batch_limit::FieldScanner;
///
/// // `CreateWebhooks { repeated Webhook webhooks = 1; string request_id = 2; }` with two
/// // webhooks and a request id.
/// let message = [0x0a, 0x02, 0x08, 0x01, 0x12, 0x01, b'r', 0x0a, 0x02, 0x08, 0x02];
/// let mut scanner = FieldScanner::new(1).unwrap();
/// scanner.feed(&message).unwrap();
/// assert_eq!(scanner.finish().unwrap(), [2..4, 9..11]);
/// ```
#[derive(Clone, Debug)]
pub struct FieldScanner {
    field: u32,
    packed: Option<Packed>,
    limit: usize,
    /// Position of the next byte, counting from where the scanner started.
    offset: usize,
    state: Wire,
    groups: Vec<u32>,
    /// Where the field's group being read began.
    group_start: usize,
    count: usize,
    spans: Vec<Range<usize>>,
    error: Option<WireError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    /// Reading a tag.
    Tag { value: u64, shift: u32 },
    /// Skipping a varint value that began at `start`.
    Varint { start: usize, item: bool, len: u32 },
    /// Skipping `left` bytes of a fixed-size value that began at `start`.
    Fixed { start: usize, item: bool, left: u8 },
    /// Reading the length of a length-delimited value.
    Length { value: u64, shift: u32, item: bool },
    /// Skipping `left` bytes of a length-delimited value that began at `start`.
    Bytes {
        start: usize,
        left: usize,
        item: bool,
    },
    /// Inside a packed record of the field: `left` bytes, elements of the given encoding; the
    /// element being read began at `element` and has `done` bytes so far.
    Packed {
        left: usize,
        element: usize,
        done: u8,
    },
}

impl FieldScanner {
    /// A scanner counting the records of field number `field`.
    ///
    /// # Errors
    ///
    /// If `field` is not a valid field number (1 to 2²⁹ − 1).
    pub fn new(field: u32) -> Result<Self, ConfigError> {
        if !(1..=MAX_FIELD).contains(&field) {
            return Err(ConfigError::new(format!(
                "{field} is not a protobuf field number (1 to {MAX_FIELD})"
            )));
        }
        Ok(FieldScanner {
            field,
            packed: None,
            limit: usize::MAX,
            offset: 0,
            state: Wire::Tag { value: 0, shift: 0 },
            groups: Vec::new(),
            group_start: 0,
            count: 0,
            spans: Vec::new(),
            error: None,
        })
    }

    /// The field is a packed repeated number: count each element of its length-delimited
    /// records. Unpacked records of the field still count one each, as parsers accept both.
    #[must_use]
    pub fn packed(mut self, packed: Packed) -> Self {
        self.packed = Some(packed);
        self
    }

    /// Stops with [`WireErrorKind::TooManyItems`] when item `max + 1` begins.
    #[must_use]
    pub fn with_limit(mut self, max: usize) -> Self {
        self.limit = max;
        self
    }

    /// Starts counting positions at `offset` instead of 0 (where the message sits in a larger
    /// body).
    pub(crate) fn at(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// The items begun so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Scans the next chunk of the message; returns the items begun so far.
    ///
    /// # Errors
    ///
    /// A malformed record ([`WireErrorKind::Malformed`]) or the item past the limit
    /// ([`WireErrorKind::TooManyItems`]). Once an error is returned, every later call returns
    /// it again.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<usize, WireError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        match self.scan(chunk) {
            Ok(()) => Ok(self.count),
            Err(error) => {
                self.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Ends the message; returns the span of each item, in order.
    ///
    /// # Errors
    ///
    /// Any error [`FieldScanner::feed`] returned, or [`WireErrorKind::Malformed`] when the
    /// message ends inside a record or a group.
    pub fn finish(self) -> Result<Vec<Range<usize>>, WireError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.state != (Wire::Tag { value: 0, shift: 0 }) || !self.groups.is_empty() {
            return Err(WireError::malformed(
                self.offset,
                "the message ends inside a record",
            ));
        }
        Ok(self.spans)
    }

    fn scan(&mut self, chunk: &[u8]) -> Result<(), WireError> {
        let mut i = 0;
        while i < chunk.len() {
            let pos = self.offset + i;
            match self.state {
                Wire::Bytes { start, left, item } => {
                    let take = left.min(chunk.len() - i);
                    i += take;
                    if take == left {
                        self.record_done(start, self.offset + i, item);
                    } else {
                        self.state = Wire::Bytes {
                            start,
                            left: left - take,
                            item,
                        };
                    }
                    continue;
                }
                Wire::Packed {
                    left,
                    element,
                    done,
                } => {
                    let b = chunk[i];
                    let element = if done == 0 {
                        self.begin_item(pos)?
                    } else {
                        element
                    };
                    let done = done + 1;
                    let ends = match self.packed {
                        Some(Packed::Fixed32) => done == 4,
                        Some(Packed::Fixed64) => done == 8,
                        _ if b & 0x80 == 0 => true,
                        _ if done == 10 => {
                            return Err(WireError::malformed(pos, "varint longer than 10 bytes"))
                        }
                        _ => false,
                    };
                    if ends {
                        self.spans.push(element..pos + 1);
                    }
                    let left = left - 1;
                    self.state = if left > 0 {
                        Wire::Packed {
                            left,
                            element,
                            done: if ends { 0 } else { done },
                        }
                    } else if ends {
                        Wire::Tag { value: 0, shift: 0 }
                    } else {
                        return Err(WireError::malformed(pos, "a packed element is cut short"));
                    };
                }
                Wire::Tag { value, shift } => {
                    let b = chunk[i];
                    let value = value | u64::from(b & 0x7f) << shift;
                    if b & 0x80 != 0 {
                        if shift >= 28 {
                            return Err(WireError::malformed(pos, "tag longer than 5 bytes"));
                        }
                        self.state = Wire::Tag {
                            value,
                            shift: shift + 7,
                        };
                    } else {
                        self.tag(value, pos + 1)?;
                    }
                }
                Wire::Varint { start, item, len } => {
                    if chunk[i] & 0x80 == 0 {
                        self.record_done(start, pos + 1, item);
                    } else if len == 9 {
                        return Err(WireError::malformed(pos, "varint longer than 10 bytes"));
                    } else {
                        self.state = Wire::Varint {
                            start,
                            item,
                            len: len + 1,
                        };
                    }
                }
                Wire::Fixed { start, item, left } => {
                    if left == 1 {
                        self.record_done(start, pos + 1, item);
                    } else {
                        self.state = Wire::Fixed {
                            start,
                            item,
                            left: left - 1,
                        };
                    }
                }
                Wire::Length { value, shift, item } => {
                    let b = chunk[i];
                    let value = value | u64::from(b & 0x7f) << shift;
                    if b & 0x80 != 0 {
                        if shift >= 28 {
                            return Err(WireError::malformed(pos, "length longer than 5 bytes"));
                        }
                        self.state = Wire::Length {
                            value,
                            shift: shift + 7,
                            item,
                        };
                    } else {
                        // Protobuf lengths are at most 2 GiB.
                        let Ok(left) = i32::try_from(value) else {
                            return Err(WireError::malformed(pos, "length over 2 GiB"));
                        };
                        let left = left as usize;
                        let start = pos + 1;
                        if item && self.packed.is_some() {
                            self.state = if left > 0 {
                                Wire::Packed {
                                    left,
                                    element: start,
                                    done: 0,
                                }
                            } else {
                                Wire::Tag { value: 0, shift: 0 }
                            };
                        } else {
                            if item {
                                self.begin_item(start)?;
                            }
                            if left > 0 {
                                self.state = Wire::Bytes { start, left, item };
                            } else {
                                self.record_done(start, start, item);
                            }
                        }
                    }
                }
            }
            i += 1;
        }
        self.offset += chunk.len();
        Ok(())
    }

    /// A complete tag; `next` is where its value begins.
    fn tag(&mut self, tag: u64, next: usize) -> Result<(), WireError> {
        let field = (tag >> 3) as u32;
        let at = next - 1;
        if field == 0 || tag >> 3 > u64::from(MAX_FIELD) {
            return Err(WireError::malformed(at, "invalid field number"));
        }
        let item = field == self.field && self.groups.is_empty();
        self.state = match tag & 7 {
            0 => {
                if item {
                    self.begin_item(next)?;
                }
                Wire::Varint {
                    start: next,
                    item,
                    len: 0,
                }
            }
            1 | 5 => {
                if item {
                    self.begin_item(next)?;
                }
                Wire::Fixed {
                    start: next,
                    item,
                    left: if tag & 7 == 1 { 8 } else { 4 },
                }
            }
            2 => Wire::Length {
                value: 0,
                shift: 0,
                item,
            },
            3 => {
                if self.groups.len() == MAX_GROUP_DEPTH {
                    return Err(WireError::malformed(at, "groups nested too deeply"));
                }
                if item {
                    self.group_start = self.begin_item(next)?;
                }
                self.groups.push(field);
                Wire::Tag { value: 0, shift: 0 }
            }
            4 => {
                if self.groups.pop() != Some(field) {
                    return Err(WireError::malformed(at, "unmatched end of group"));
                }
                if field == self.field && self.groups.is_empty() {
                    // The span of a group is its contents, up to the end tag.
                    self.spans.push(self.group_start..tag_start(next, tag));
                }
                Wire::Tag { value: 0, shift: 0 }
            }
            _ => return Err(WireError::malformed(at, "invalid wire type")),
        };
        Ok(())
    }

    fn begin_item(&mut self, start: usize) -> Result<usize, WireError> {
        if self.count == self.limit {
            return Err(WireError {
                kind: WireErrorKind::TooManyItems,
                offset: start,
                reason: "too many items",
            });
        }
        self.count += 1;
        Ok(start)
    }

    fn record_done(&mut self, start: usize, end: usize, item: bool) {
        if item {
            self.spans.push(start..end);
        }
        self.state = Wire::Tag { value: 0, shift: 0 };
    }
}

/// Where the tag `tag`, ending just before `next`, began (tags are written in the fewest bytes).
fn tag_start(next: usize, tag: u64) -> usize {
    let mut len = 1;
    let mut rest = tag >> 7;
    while rest > 0 {
        len += 1;
        rest >>= 7;
    }
    next - len
}

/// The spans of the records of field `field` at the top level of one protobuf `message`: the
/// one-shot form of [`FieldScanner`].
///
/// ```
/// use tower_api_errors::batch_limit::field_spans;
///
/// // `{ ids: ["a", "bc"], page_size: 5 }` as fields 1 (repeated string) and 2 (int32).
/// let message = [0x0a, 0x01, b'a', 0x0a, 0x02, b'b', b'c', 0x10, 0x05];
/// assert_eq!(field_spans(&message, 1).unwrap(), [2..3, 5..7]);
/// assert!(field_spans(&message[..4], 1).is_err());
/// ```
///
/// # Errors
///
/// If `field` is not a field number, or `message` is not a well-formed protobuf message.
pub fn field_spans(message: &[u8], field: u32) -> Result<Vec<Range<usize>>, WireError> {
    let mut scanner =
        FieldScanner::new(field).map_err(|_| WireError::malformed(0, "invalid field number"))?;
    scanner.feed(message)?;
    scanner.finish()
}

/// Why a [`FieldScanner`] stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    kind: WireErrorKind,
    offset: usize,
    reason: &'static str,
}

/// The kind of a [`WireError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireErrorKind {
    /// The item past the limit began.
    TooManyItems,
    /// The bytes are not a well-formed protobuf message (or gRPC framing).
    Malformed,
    /// A gRPC message is compressed; the scanner reads uncompressed messages only.
    Compressed,
    /// A gRPC message declares a length over the byte cap.
    TooLarge,
}

impl WireError {
    fn malformed(offset: usize, reason: &'static str) -> Self {
        WireError {
            kind: WireErrorKind::Malformed,
            offset,
            reason,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> WireErrorKind {
        self.kind
    }

    /// Where in the bytes the error was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for WireError {}

/// The length-prefixed messages of a gRPC request body (a compression flag byte, a 4-byte
/// big-endian length, the message), each scanned for the field; the limit applies to each
/// message.
#[derive(Clone, Debug)]
pub(crate) struct GrpcMessages {
    template: FieldScanner,
    max_message: usize,
    header: [u8; 5],
    have: usize,
    left: usize,
    scanner: Option<FieldScanner>,
    offset: usize,
    spans: Vec<Range<usize>>,
}

impl GrpcMessages {
    pub(crate) fn new(template: FieldScanner, max_message: usize) -> Self {
        GrpcMessages {
            template,
            max_message,
            header: [0; 5],
            have: 0,
            left: 0,
            scanner: None,
            offset: 0,
            spans: Vec::new(),
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), WireError> {
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.scanner {
                None => {
                    let take = (5 - self.have).min(chunk.len() - i);
                    self.header[self.have..self.have + take].copy_from_slice(&chunk[i..i + take]);
                    self.have += take;
                    i += take;
                    if self.have == 5 {
                        self.message_header(self.offset + i)?;
                    }
                }
                Some(scanner) => {
                    let take = self.left.min(chunk.len() - i);
                    scanner.feed(&chunk[i..i + take])?;
                    self.left -= take;
                    i += take;
                    if self.left == 0 {
                        self.message_done()?;
                    }
                }
            }
        }
        self.offset += chunk.len();
        Ok(())
    }

    /// A complete 5-byte prefix; the message begins at `start`.
    fn message_header(&mut self, start: usize) -> Result<(), WireError> {
        self.have = 0;
        match self.header[0] {
            0 => {}
            1 => {
                return Err(WireError {
                    kind: WireErrorKind::Compressed,
                    offset: start - 5,
                    reason: "compressed message",
                })
            }
            _ => return Err(WireError::malformed(start - 5, "invalid compression flag")),
        }
        let length = u32::from_be_bytes([
            self.header[1],
            self.header[2],
            self.header[3],
            self.header[4],
        ]) as usize;
        if length > self.max_message {
            return Err(WireError {
                kind: WireErrorKind::TooLarge,
                offset: start - 4,
                reason: "message larger than the byte cap",
            });
        }
        self.left = length;
        self.scanner = Some(self.template.clone().at(start));
        if length == 0 {
            self.message_done()?;
        }
        Ok(())
    }

    fn message_done(&mut self) -> Result<(), WireError> {
        if let Some(scanner) = self.scanner.take() {
            self.spans.extend(scanner.finish()?);
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Result<Vec<Range<usize>>, WireError> {
        if self.have > 0 || self.scanner.is_some() {
            return Err(WireError::malformed(
                self.offset,
                "the body ends inside a message",
            ));
        }
        Ok(self.spans)
    }
}

#[cfg(test)]
mod tests;
