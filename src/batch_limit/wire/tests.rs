use super::*;
use prost::Message;

#[derive(Clone, PartialEq, Message)]
struct Webhook {
    #[prost(string, tag = "1")]
    url: String,
    #[prost(int64, repeated, tag = "2")]
    events: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct Create {
    #[prost(message, repeated, tag = "1")]
    webhooks: Vec<Webhook>,
    #[prost(string, tag = "2")]
    request_id: String,
    #[prost(int64, repeated, tag = "3")]
    ids: Vec<i64>,
    #[prost(fixed32, repeated, tag = "4")]
    codes: Vec<u32>,
    #[prost(int32, repeated, packed = "false", tag = "5")]
    loose: Vec<i32>,
    #[prost(double, tag = "6")]
    ratio: f64,
}

fn sample() -> Create {
    Create {
        webhooks: (0..4)
            .map(|i| Webhook {
                url: format!("https://example.com/{i}"),
                events: vec![1, 300, -1],
            })
            .collect(),
        request_id: "req".into(),
        ids: vec![1, 128, 1 << 40, -5],
        codes: vec![7, 8, 9],
        loose: vec![1, -1],
        ratio: 0.5,
    }
}

fn scan(bytes: &[u8], scanner: FieldScanner, split: usize) -> Result<Vec<Range<usize>>, WireError> {
    let mut scanner = scanner;
    scanner.feed(&bytes[..split])?;
    scanner.feed(&bytes[split..])?;
    scanner.finish()
}

#[test]
fn counts_repeated_messages_and_their_bytes() {
    let message = sample();
    let bytes = message.encode_to_vec();
    for split in 0..=bytes.len() {
        let spans = scan(&bytes, FieldScanner::new(1).unwrap(), split).unwrap();
        assert_eq!(spans.len(), 4);
        for (span, webhook) in spans.iter().zip(&message.webhooks) {
            assert_eq!(&Webhook::decode(&bytes[span.clone()]).unwrap(), webhook);
        }
        assert_eq!(
            scan(&bytes, FieldScanner::new(2).unwrap(), split)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            scan(&bytes, FieldScanner::new(6).unwrap(), split)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            scan(&bytes, FieldScanner::new(9).unwrap(), split)
                .unwrap()
                .len(),
            0
        );
        // Unpacked numbers: one record each.
        assert_eq!(
            scan(&bytes, FieldScanner::new(5).unwrap(), split)
                .unwrap()
                .len(),
            2
        );
        // Packed numbers: one record, four elements when told how they are packed.
        assert_eq!(
            scan(&bytes, FieldScanner::new(3).unwrap(), split)
                .unwrap()
                .len(),
            1
        );
        let packed = FieldScanner::new(3).unwrap().packed(Packed::Varint);
        assert_eq!(scan(&bytes, packed, split).unwrap().len(), 4);
        let packed = FieldScanner::new(4).unwrap().packed(Packed::Fixed32);
        assert_eq!(scan(&bytes, packed, split).unwrap().len(), 3);
        let packed = FieldScanner::new(5).unwrap().packed(Packed::Varint);
        assert_eq!(scan(&bytes, packed, split).unwrap().len(), 2);
    }
}

#[test]
fn stops_at_the_item_past_the_limit() {
    let bytes = sample().encode_to_vec();
    let spans = field_spans(&bytes, 1).unwrap();
    let mut scanner = FieldScanner::new(1).unwrap().with_limit(3);
    let error = scanner.feed(&bytes).unwrap_err();
    assert_eq!(error.kind(), WireErrorKind::TooManyItems);
    assert_eq!(error.offset(), spans[3].start);
    assert_eq!(scanner.feed(b"").unwrap_err(), error);
}

#[test]
fn malformed_messages_are_refused() {
    let bytes = sample().encode_to_vec();
    for cut in 1..bytes.len() {
        // A message cut inside a record is refused (cuts between records are valid messages).
        let result = field_spans(&bytes[..cut], 1);
        if let Ok(spans) = result {
            assert!(spans.len() <= 4);
        }
    }
    for bad in [
        &[0x0a, 0x05, 1, 2][..], // length past the end
        &[0x00, 0x01],           // field 0
        &[0x0f, 0x01],           // wire type 7
        &[0x0c],                 // end of a group never opened
        &[0x0b, 0x08, 0x01],     // group never closed
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ], // 11-byte varint
        &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], // 4 GiB length
        &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // 6-byte tag
    ] {
        let error = field_spans(bad, 1).unwrap_err();
        assert_eq!(error.kind(), WireErrorKind::Malformed, "{bad:?}: {error}");
    }
    let error = scan(
        &[0x1a, 0x02, 0x80, 0x80],
        FieldScanner::new(3).unwrap().packed(Packed::Varint),
        4,
    );
    assert_eq!(error.unwrap_err().kind(), WireErrorKind::Malformed);
    assert!(FieldScanner::new(0).is_err());
    assert!(FieldScanner::new(1 << 29).is_err());
}

#[test]
fn groups_are_items_and_skipped_alike() {
    // field 1 as a group holding field 2 = 1, then field 1 as a varint, then field 3 as a
    // group holding field 1 (nested: not counted).
    let bytes = [0x0b, 0x10, 0x01, 0x0c, 0x08, 0x07, 0x1b, 0x08, 0x01, 0x1c];
    assert_eq!(field_spans(&bytes, 1).unwrap(), [1..3, 5..6]);
    assert_eq!(field_spans(&bytes, 3).unwrap(), vec![7..9; 1]);
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[test]
fn grpc_bodies_are_unframed_and_each_message_counted() {
    let bytes = sample().encode_to_vec();
    let mut body = frame(&bytes);
    body.extend(frame(&[]));
    body.extend(frame(&bytes));
    for split in 0..=body.len() {
        let mut messages = GrpcMessages::new(FieldScanner::new(1).unwrap().with_limit(4), 1 << 20);
        messages.feed(&body[..split]).unwrap();
        messages.feed(&body[split..]).unwrap();
        let spans = messages.finish().unwrap();
        assert_eq!(spans.len(), 8);
        for span in spans {
            Webhook::decode(&body[span]).unwrap();
        }
    }
    let mut messages = GrpcMessages::new(FieldScanner::new(1).unwrap().with_limit(3), 1 << 20);
    assert_eq!(
        messages.feed(&body).unwrap_err().kind(),
        WireErrorKind::TooManyItems
    );

    let mut compressed = frame(&bytes);
    compressed[0] = 1;
    let mut messages = GrpcMessages::new(FieldScanner::new(1).unwrap(), 1 << 20);
    assert_eq!(
        messages.feed(&compressed).unwrap_err().kind(),
        WireErrorKind::Compressed
    );
    let mut messages = GrpcMessages::new(FieldScanner::new(1).unwrap(), 10);
    assert_eq!(
        messages.feed(&frame(&bytes)).unwrap_err().kind(),
        WireErrorKind::TooLarge
    );
    let mut messages = GrpcMessages::new(FieldScanner::new(1).unwrap(), 1 << 20);
    messages.feed(&frame(&bytes)[..9]).unwrap();
    assert_eq!(
        messages.finish().unwrap_err().kind(),
        WireErrorKind::Malformed
    );
}
