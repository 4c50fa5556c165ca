//! Property tests for Server-Sent Events: encode then parse, under any
//! chunking, gives back the events sent (with line breaks normalised to `\n`).

use std::time::Duration;

use proptest::prelude::*;
use wavecast_core::sse::{SseEvent, SseParser};

/// What a sender asks for.
#[derive(Clone, Debug)]
enum Item {
    Event {
        data: String,
        event: Option<String>,
        id: Option<String>,
        retry: Option<u64>,
    },
    Comment(String),
}

fn text() -> impl Strategy<Value = String> {
    // Plenty of line breaks, spaces and colons, plus arbitrary Unicode.
    prop::collection::vec(
        prop_oneof![
            Just("\r\n".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just(" ".to_owned()),
            Just(":".to_owned()),
            Just("\u{FEFF}".to_owned()),
            any::<char>().prop_map(String::from),
            "[a-z]{1,4}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

fn single_line() -> impl Strategy<Value = String> {
    text().prop_map(|s| {
        s.chars()
            .filter(|&c| c != '\r' && c != '\n' && c != '\0')
            .collect()
    })
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => (
            text(),
            prop::option::of(single_line()),
            prop::option::of(single_line()),
            prop::option::of(0u64..100_000),
        )
            .prop_map(|(data, event, id, retry)| Item::Event { data, event, id, retry }),
        1 => text().prop_map(Item::Comment),
    ]
}

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn encode(items: &[Item]) -> Vec<u8> {
    let mut wire = Vec::new();
    for item in items {
        let event = match item {
            Item::Event {
                data,
                event,
                id,
                retry,
            } => {
                let mut e = SseEvent::data(data.as_str());
                if let Some(name) = event {
                    e = e.event(name.as_str());
                }
                if let Some(id) = id {
                    e = e.id(id.as_str());
                }
                if let Some(ms) = retry {
                    e = e.retry(Duration::from_millis(*ms));
                }
                e
            }
            Item::Comment(text) => SseEvent::comment(text.as_str()),
        };
        event.encode_to(&mut wire);
    }
    wire
}

/// The events a client should see, with comments exposed.
fn expected(items: &[Item]) -> Vec<SseEvent> {
    let mut out = Vec::new();
    let mut last_id = String::new();
    for item in items {
        match item {
            Item::Event {
                data,
                event,
                id,
                retry,
            } => {
                if let Some(id) = id {
                    last_id.clone_from(id);
                }
                let mut e = SseEvent::data(normalise(data));
                if let Some(name) = event.as_ref().filter(|n| !n.is_empty()) {
                    e = e.event(name.as_str());
                }
                if !last_id.is_empty() {
                    e = e.id(last_id.as_str());
                }
                if let Some(ms) = retry {
                    e = e.retry(Duration::from_millis(*ms));
                }
                out.push(e);
            }
            Item::Comment(text) => {
                out.extend(normalise(text).split('\n').map(SseEvent::comment));
            }
        }
    }
    out
}

fn parse_chunked(wire: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut parser = SseParser::new().with_comments(true);
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&wire.len())) {
        let cut = cut.clamp(start, wire.len());
        parser.feed(&wire[start..cut]);
        start = cut;
        while let Some(event) = parser.poll_event().expect("within limits") {
            events.push(event);
        }
    }
    events
}

proptest! {
    #[test]
    fn encode_parse_round_trip(
        items in prop::collection::vec(item(), 0..8),
        mut cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire = encode(&items);
        let mut cuts: Vec<usize> = cuts.drain(..).map(|i| i.index(wire.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(parse_chunked(&wire, &cuts), expected(&items));
    }

    #[test]
    fn byte_by_byte_matches_whole(items in prop::collection::vec(item(), 0..6)) {
        let wire = encode(&items);
        let cuts: Vec<usize> = (0..wire.len()).collect();
        prop_assert_eq!(parse_chunked(&wire, &cuts), parse_chunked(&wire, &[]));
    }

    #[test]
    fn arbitrary_input_chunking_invariant(
        input in prop::collection::vec(
            prop_oneof![
                Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), Just(0xEF), Just(0xBB),
                Just(0xBF), Just(0), Just(b'a'),
                Just(b'd'), Just(b'i'), any::<u8>(),
            ],
            0..200,
        ),
        prefix in prop::collection::vec(
            prop_oneof![Just(&b"data"[..]), Just(&b"id"[..]), Just(&b"event"[..]), Just(&b"retry"[..])],
            0..3,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire: Vec<u8> = prefix.concat();
        wire.extend_from_slice(&input);
        let run = |cuts: &[usize]| {
            let mut parser = SseParser::with_limit(64).with_comments(true);
            let mut events = Vec::new();
            let mut start = 0;
            for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
                parser.feed(&wire[start..c]);
                start = c;
                loop {
                    match parser.poll_event() {
                        Ok(Some(event)) => events.push(Ok(event)),
                        Ok(None) => break,
                        Err(error) => {
                            events.push(Err(error));
                            break;
                        }
                    }
                }
                if matches!(events.last(), Some(Err(_))) {
                    break;
                }
            }
            (events, parser.last_event_id().to_owned(), parser.retry())
        };
        let whole = run(&[]);
        prop_assert_eq!(run(&[cut.index(wire.len() + 1)]), whole.clone());
        let every: Vec<usize> = (0..wire.len()).collect();
        prop_assert_eq!(run(&every), whole);
    }
}
